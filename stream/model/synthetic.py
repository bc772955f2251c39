"""The deterministic synthetic weights of the shared parity recipes (MiDaS's, Depth
Anything V2's).

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


def depth_anything_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """One entry of the Depth Anything V2 recipe (its manifest spells it out), seeded the
    same way."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    if key.split(".")[-1] in ("pos_embed", "cls_token", "mask_token"):
        value = 0.3 * rng.standard_normal(shape)
    elif key.endswith(".gamma"):
        value = rng.uniform(0.05, 0.2, shape)
    elif len(shape) == 1 and key.endswith(".weight"):
        value = 1 + 0.1 * rng.standard_normal(shape)
    elif key == "depth_head.scratch.output_conv2.2.bias":
        value = 1 + 0.05 * rng.standard_normal(shape)
    elif len(shape) == 1 and key.endswith(".bias"):
        value = 0.05 * rng.standard_normal(shape)
    elif key in ("depth_head.resize_layers.0.weight", "depth_head.resize_layers.1.weight"):
        value = rng.standard_normal(shape) * np.sqrt(1.0 / shape[0])
    elif len(shape) >= 2 and key.endswith(".weight"):
        gain = 0.01 if key == "depth_head.scratch.output_conv2.2.weight" else 1.0
        value = rng.standard_normal(shape) * np.sqrt(gain / np.prod(shape[1:]))
    else:
        raise ValueError(f"synthetic recipe has no rule for {key} with shape {shape}")
    return value.astype(np.float32)


RECIPES = {"midas": synthetic_value, "depth-anything": depth_anything_value}


def synthetic_state_dict(
    template: dict[str, torch.Tensor], recipe: str = "midas"
) -> dict[str, torch.Tensor]:
    """Synthetic values for every key of ``template`` (a model's own state dict)."""
    value = RECIPES[recipe]
    return {key: torch.from_numpy(value(key, tuple(t.shape))) for key, t in template.items()}
