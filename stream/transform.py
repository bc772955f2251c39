"""The official input transforms (MiDaS small's, Depth Anything V2's), in float32.

The official transform is RGB /255 (float64) -> bicubic resize keeping the
aspect ratio so the longer side fits the target, both sides multiples of 32
("upper bound") -> ImageNet mean/std -> CHW float32, with sizes rounded as
numpy's ``round`` rounds.  Here the same steps run in another order: the
resize runs on the uint8 image converted to float32, and /255 and mean/std
become one multiply-add per channel on the small image.  A bicubic resize is
linear with weights that sum to one, so this is the same map; float32
rounding puts it within 2e-6 of the official float64 result (tested on the
reference cases).  It matters on the live path: converting a whole camera
frame to float64 first costs the inference thread several times more.  Depth Anything V2
takes the same steps, but its size is a lower bound: the shorter side at least the target,
both sides multiples of 14 (its official ``Resize(..., resize_method="lower_bound")``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
# (x / 255 - mean) / std as x * SCALE + SHIFT, per channel.
SCALE = (1.0 / (255.0 * STD)).astype(np.float32)
SHIFT = (-MEAN / STD).astype(np.float32)


@dataclass(frozen=True)
class Preprocessing:
    """How a model sizes its input: sides a ``multiple`` of this, the target an upper bound
    on the longer side (MiDaS) or a ``lower_bound`` on the shorter one (Depth Anything)."""

    multiple: int
    lower_bound: bool


MIDAS = Preprocessing(multiple=32, lower_bound=False)
PREPROCESSING = {"midas": MIDAS, "depth-anything": Preprocessing(multiple=14, lower_bound=True)}


def _multiple_of(x: float, multiple: int, max_val: int) -> int:
    y = int(np.round(x / multiple) * multiple)
    if y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    return max(y, multiple)


def _at_least(x: float, multiple: int, min_val: int) -> int:
    y = int(np.round(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def network_size(
    height: int, width: int, target: int = 256, prep: Preprocessing = MIDAS
) -> tuple[int, int]:
    """The ``(H, W)`` the network sees for an image of ``height`` x ``width``."""
    m = prep.multiple
    if prep.lower_bound:
        scale = max(target / height, target / width)
        return _at_least(scale * height, m, target), _at_least(scale * width, m, target)
    scale = min(target / height, target / width)
    return _multiple_of(scale * height, m, target), _multiple_of(scale * width, m, target)


@contextmanager
def _without_ipp() -> Iterator[None]:
    """OpenCV's own float32 resize in the calling thread, not Intel IPP's.

    IPP's float32 cubic rounds its coefficients differently: up to 4.7e-5 off
    the official input on one reference case, which the random reference
    weights amplified to 2.7e-4 of the output range, past the fp32 tolerance.
    The switch is per thread in OpenCV, and is put back.
    """
    previous = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(previous)


def to_net_input(rgb: np.ndarray, target: int = 256, prep: Preprocessing = MIDAS) -> np.ndarray:
    """``rgb``: HxWx3 uint8.  Returns the float32 CHW network input."""
    h, w = network_size(rgb.shape[0], rgb.shape[1], target, prep)
    with _without_ipp():
        small = cv2.resize(rgb.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        np.multiply(small[:, :, c], SCALE[c], out=out[c])
        out[c] += SHIFT[c]
    return out
