"""TorchScript trace + freeze of the model, cached on disk per weights, torch and shape.

Tracing takes seconds; the cache makes every later start with the same
weights and frame size immediate.  A cache file that fails to load is
rebuilt, never trusted.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("depthstream")


def cache_path(cache_dir: Path, digest: str, shape: tuple[int, int]) -> Path:
    """The cache file name carries everything the traced graph depends on."""
    version = torch.__version__.replace("+", "_")
    return (
        cache_dir / "traced" / f"midas_small-{digest[:24]}-torch{version}-{shape[0]}x{shape[1]}.pt"
    )


def trace(model: nn.Module, shape: tuple[int, int]) -> torch.jit.ScriptModule:
    """Trace ``model`` at ``(H, W)`` and freeze it (weights inlined, eval only).

    ``optimize_numerics=False`` keeps batch norm out of the convolutions: folding
    is faster but changes results beyond float32 rounding, and this path must
    stay exact to the reference.
    """
    example = torch.zeros(1, 3, *shape)
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        return torch.jit.freeze(traced.eval(), optimize_numerics=False)


def load_or_trace(
    model: nn.Module, digest: str, shape: tuple[int, int], cache_dir: Path
) -> torch.jit.ScriptModule:
    """Return the traced model for ``shape``, from the cache when a valid one exists.

    Torch marks TorchScript deprecated; those warnings say nothing a user can
    act on, so they are silenced here.
    """
    path = cache_path(cache_dir, digest, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if path.is_file():
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                log.warning("trace cache %s unreadable (%s); tracing again", path, exc)
        log.info("tracing the model for %dx%d input (cached afterwards)", *shape)
        module = trace(model, shape)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".trace.", suffix=".pt", dir=path.parent)
            os.close(fd)
            try:
                torch.jit.save(module, tmp)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not cache the traced model at %s: %s", path, exc)
    return module
