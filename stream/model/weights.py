"""Building a registered model and loading its weights into it (needs torch).

Which file to load is decided by :mod:`stream.model.locate`; this module
refuses anything that is not exactly the chosen model's state dict.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from depthstream.stream.errors import UserError
from depthstream.stream.model.locate import WeightsChoice
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS, ModelSpec
from depthstream.stream.model.synthetic import synthetic_state_dict

log = logging.getLogger("depthstream")


@dataclass(frozen=True)
class LoadedModel:
    """An eval-mode model plus what identifies its weights (for the trace cache)."""

    model: nn.Module
    digest: str
    choice: WeightsChoice
    name: str = DEFAULT_MODEL


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
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    source: str,
    title: str = "MiDaS v2.1 small",
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
        raise UserError(f"{source} is not {title} weights: " + "; ".join(problems))


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A content hash of tensors, for weights that exist only in memory."""
    h = hashlib.sha256()
    for key, tensor in state.items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build(spec: ModelSpec) -> nn.Module:
    """The model's network, untrained (its registry entry names the class)."""
    module, _, name = spec.network.partition(":")
    return getattr(importlib.import_module(module), name)(**spec.network_args)


def load_model(choice: WeightsChoice, spec: ModelSpec = MODELS[DEFAULT_MODEL]) -> LoadedModel:
    """Build the network and load ``choice`` strictly (the caller warns about synthetic ones)."""
    model = build(spec)
    template = model.state_dict()
    if choice.synthetic:
        state = synthetic_state_dict(template, spec.synthetic)
        digest = "synthetic-" + state_dict_digest(state)
    else:
        state, digest = read_state_dict(choice.path)
        check_state_dict(template, state, str(choice.path), spec.title)
        log.info("weights: %s (%s)", choice.path, choice.origin)
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.eval(), digest, choice, spec.name)
