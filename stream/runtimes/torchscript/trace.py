"""TorchScript trace + freeze of the model, cached on disk per weights, torch, shape, precision.

Tracing takes seconds; the cache makes every later start with the same
weights and frame size immediate.  A cache file that fails to load is
rebuilt, never trusted.

The traced graph is channels-last with batch norm folded and the exact
rewrites of :mod:`stream.runtimes.rewrites` applied: with oneDNN graph
fusion switched on (see :mod:`stream.runtimes.torchscript.runtime`)
convolutions, activations and residual adds then run as fused kernels
without layout reorders between them.

``bf16-decoder`` keeps the encoder in fp32 and runs the decoder (the registry's
``decoder``: MiDaS's ``scratch``, most of its arithmetic; Depth Anything's DPT
``depth_head.scratch``) in bf16.  Rounding in the encoder is what the synthetic
weights amplify into a different depth map; rounding in the decoder stays small.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS
from depthstream.stream.runtimes.cache_file import write_atomically
from depthstream.stream.runtimes.torchscript.fold import fold_batchnorm

log = logging.getLogger("depthstream")
# In every cache file name; raised whenever :func:`trace` builds a different
# graph, so caches written by an older version are traced again, not reused.
GRAPH_VERSION = 2


def cache_path(
    cache_dir: Path, key: str, shape: tuple[int, int], precision: str, model: str = DEFAULT_MODEL
) -> Path:
    """The cache file name carries everything the traced graph depends on."""
    version = torch.__version__.replace("+", "_")
    size = f"{shape[0]}x{shape[1]}"
    name = f"{model}-{key[:24]}-torch{version}-{size}-{precision}-g{GRAPH_VERSION}.pt"
    return cache_dir / "traced" / name


def example_input(shape: tuple[int, int]) -> torch.Tensor:
    """A zero input of ``(H, W)`` in the layout the traced graph expects."""
    return torch.zeros(1, 3, *shape).contiguous(memory_format=torch.channels_last)


class Bf16(nn.Module):
    """Runs ``inner`` under CPU bf16 autocast; traced, the casts become part of the graph."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: torch.Tensor, **kwargs: list[int]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.inner(*args, **kwargs)


def trace(
    model: nn.Module, shape: tuple[int, int], precision: str = "fp32", decoder: str = "scratch"
) -> torch.jit.ScriptModule:
    """Trace a channels-last, batch-norm-folded, rewritten copy of ``model`` at ``(H, W)``
    and freeze it.

    ``bf16`` traces the whole network under CPU autocast, ``bf16-decoder`` each
    child of the ``decoder`` module; either way the casts are recorded into the graph.
    """
    # Imported here: the rewrites need timm and the model classes, which a warm start
    # (that only loads the traced file) never imports.
    from depthstream.stream.runtimes.rewrites import convolve_before_upsampling, symmetric_padding

    net = convolve_before_upsampling(symmetric_padding(fold_batchnorm(model)))
    net = net.to(memory_format=torch.channels_last)
    if precision == "bf16":
        net = Bf16(net)
    elif precision == "bf16-decoder":
        layers = net.get_submodule(decoder)
        for name, part in list(layers.named_children()):
            setattr(layers, name, Bf16(part))
    with torch.no_grad():
        traced = torch.jit.trace(net, example_input(shape), check_trace=False)
        return torch.jit.freeze(traced.eval())


def load_or_trace(
    handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path, precision: str = "fp32"
) -> torch.jit.ScriptModule:
    """Return the traced model for ``shape``, from the cache when a valid one exists.

    The network itself is built only on a miss: a warm start never imports
    timm or holds the eager weights.  Torch marks TorchScript deprecated; those
    warnings say nothing a user can act on, so they are silenced here.
    """
    path = cache_path(cache_dir, handle.key, shape, precision, handle.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # Shapes read while tracing become constants, as they should: a trace is per shape.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if path.is_file():
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                log.warning("trace cache %s unreadable (%s); tracing again", path, exc)
        log.info("tracing the model for %dx%d %s input (cached afterwards)", *shape, precision)
        module = trace(handle.load().model, shape, precision, MODELS[handle.model].decoder)
        write_atomically(path, lambda tmp: torch.jit.save(module, str(tmp)))
    return module
