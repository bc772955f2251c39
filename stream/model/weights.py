"""Finding, loading and checking MiDaS small weights, the way users expect.

Resolution order: ``--weights PATH`` -> ``[model] weights`` in config ->
``DEPTHSTREAM_WEIGHTS`` -> the user cache -> download from the official release
(checksummed).  ``synthetic`` selects the untrained parity weights and is only
ever used when asked for by name.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from stream.config import Config
from stream.errors import UserError
from stream.model.download import DownloadError, download
from stream.model.midas_small import MidasSmall
from stream.model.synthetic import synthetic_state_dict

log = logging.getLogger("depthstream")

SYNTHETIC = "synthetic"
WEIGHTS_FILENAME = "midas_v21_small_256.pt"
ENV_VAR = "DEPTHSTREAM_WEIGHTS"


@dataclass(frozen=True)
class WeightsChoice:
    """Where the weights come from: a file path, or the synthetic recipe."""

    path: Path | None
    origin: str

    @property
    def synthetic(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class LoadedModel:
    """An eval-mode model plus what identifies its weights (for the trace cache)."""

    model: MidasSmall
    digest: str
    choice: WeightsChoice


def choose_weights(
    cli_value: str | None, cfg: Config, allow_download: bool = True
) -> WeightsChoice:
    """Apply the resolution order; download into the cache when nothing else is found."""
    for value, origin in (
        (cli_value, "--weights"),
        (cfg.model.weights, "config [model] weights"),
        (os.environ.get(ENV_VAR), f"${ENV_VAR}"),
    ):
        if value:
            if value == SYNTHETIC:
                return WeightsChoice(None, origin)
            path = Path(value).expanduser()
            if path.is_dir():
                raise UserError(f"weights {path} (from {origin}) is a directory, not a file")
            if not path.is_file():
                raise UserError(f"weights file {path} (from {origin}) does not exist")
            return WeightsChoice(path, origin)
    cached = cfg.cache_dir() / WEIGHTS_FILENAME
    if cached.is_file():
        return WeightsChoice(cached, "cache")
    hint = (
        f"put {WEIGHTS_FILENAME} at {cached}, pass --weights PATH, or set {ENV_VAR}"
        " (--weights synthetic runs untrained weights for smoke tests)"
    )
    if not allow_download:
        raise UserError(f"no MiDaS weights found: {hint}")
    log.info("downloading MiDaS v2.1 small weights from %s", cfg.model.weights_url)
    try:
        download(cfg.model.weights_url, cached, cfg.model.weights_sha256)
    except DownloadError as exc:
        raise UserError(f"could not download MiDaS weights ({exc}); {hint}") from None
    return WeightsChoice(cached, "download")


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a ``torch.save`` state dict (bare, or wrapped under ``"model"``) and its SHA-256."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise UserError(f"{path} is not a PyTorch weights file") from None
        # torch.load(weights_only=True) refuses pickled code: a whole saved model.
        raise UserError(
            f"{path} holds pickled objects, not a plain state dict; "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a PyTorch weights file ({reason})") from None
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return dict(obj), hashlib.sha256(data).hexdigest()


def check_state_dict(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], source: str
) -> None:
    """Refuse anything but an exact key/shape match, naming the first offenders."""
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} != {tuple(t.shape)}"
        for k, t in expected.items()
        if k in given and given[k].shape != t.shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")
            problems.append(f"{len(items)} {label} key(s): {shown}")
    if problems:
        raise UserError(f"{source} is not MiDaS v2.1 small weights: " + "; ".join(problems))


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A content hash of tensors, for weights that exist only in memory."""
    h = hashlib.sha256()
    for key, tensor in state.items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_model(choice: WeightsChoice) -> LoadedModel:
    """Build the network and load ``choice`` strictly; warn loudly for synthetic weights."""
    model = MidasSmall()
    template = model.state_dict()
    if choice.synthetic:
        log.warning(
            "WARNING: using UNTRAINED synthetic weights (from %s); the depth is meaningless",
            choice.origin,
        )
        state = synthetic_state_dict(template)
        digest = "synthetic-" + state_dict_digest(state)
    else:
        state, digest = read_state_dict(choice.path)
        check_state_dict(template, state, str(choice.path))
        log.info("weights: %s (%s)", choice.path, choice.origin)
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.eval(), digest, choice)
