"""The deterministic synthetic weights of the shared MiDaS parity recipe.

They exist so the network and preprocessing can be checked bit-for-bit
against cases produced by the official code, and so offline smoke tests can
run.  They are NOT trained: every caller must say so to the user.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def synthetic_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """One state-dict entry, seeded by the CRC-32 of its key (float64 maths, float32 result)."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    if key.endswith("running_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif key.endswith("running_var"):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) == 1 and key.endswith(".weight"):
        value = 1 + 0.1 * rng.standard_normal(shape)
    elif len(shape) == 1 and key.endswith(".bias"):
        value = 0.05 * rng.standard_normal(shape)
    elif len(shape) == 4 and key.endswith(".weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        raise ValueError(f"synthetic recipe has no rule for {key} with shape {shape}")
    return value.astype(np.float32)


def synthetic_state_dict(template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Synthetic values for every key of ``template`` (a model's own state dict)."""
    return {
        key: torch.from_numpy(synthetic_value(key, tuple(t.shape))) for key, t in template.items()
    }
