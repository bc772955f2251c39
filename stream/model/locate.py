"""Where a model's weights come from, decided without loading them (and without torch).

Resolution order: ``--weights PATH`` -> ``[model] weights`` in config ->
``DEPTHSTREAM_WEIGHTS`` -> the user cache -> download from the official release
(checksummed).  ``synthetic`` selects the untrained parity weights and is only
ever used when asked for by name.  Kept free of torch so that the ONNX Runtime
and OpenVINO paths can start from a cached model without importing it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from depthstream.stream.config import ModelConfig
from depthstream.stream.errors import UserError
from depthstream.stream.model.download import DownloadError, download

log = logging.getLogger("depthstream")

SYNTHETIC = "synthetic"
ENV_VAR = "DEPTHSTREAM_WEIGHTS"


@dataclass(frozen=True)
class WeightsChoice:
    """Where the weights come from: a file path, or the synthetic recipe."""

    path: Path | None
    origin: str

    @property
    def synthetic(self) -> bool:
        return self.path is None


def choose_weights(
    cli_value: str | None, model: ModelConfig, allow_download: bool = True
) -> WeightsChoice:
    """Apply the resolution order; download into the cache when nothing else is found."""
    for value, origin in (
        (cli_value, "--weights"),
        (model.weights, "config [model] weights"),
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
    spec = model.spec
    cached = model.cache_root() / spec.weights_file
    if cached.is_file():
        return WeightsChoice(cached, "cache")
    hint = (
        f"put {spec.weights_file} at {cached}, pass --weights PATH, or set {ENV_VAR}"
        " (--weights synthetic runs untrained weights for smoke tests)"
    )
    if not allow_download:
        raise UserError(f"no {spec.title} weights found: {hint}")
    url = model.weights_url or spec.weights_url
    log.info("downloading %s weights (%s) from %s", spec.title, spec.licence, url)
    try:
        download(url, cached, model.weights_sha256 or spec.weights_sha256)
    except DownloadError as exc:
        raise UserError(f"could not download {spec.title} weights ({exc}); {hint}") from None
    return WeightsChoice(cached, "download")


def file_digest(path: Path) -> str:
    """SHA-256 of a weights file: what caches derived from it are keyed by."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise UserError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    return h.hexdigest()
