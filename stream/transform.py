"""The official MiDaS small input transform, reproduced exactly.

RGB /255 (float64) -> bicubic resize keeping the aspect ratio so the longer side
fits the target, both sides multiples of 32 ("upper bound") -> ImageNet
mean/std -> CHW float32.  Rounding follows numpy's ``round`` as MiDaS does.
"""

from __future__ import annotations

import cv2
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _multiple_of(x: float, multiple: int, max_val: int) -> int:
    y = int(np.round(x / multiple) * multiple)
    if y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    return max(y, multiple)


def network_size(height: int, width: int, target: int = 256, multiple: int = 32) -> tuple[int, int]:
    """The ``(H, W)`` the network sees for an image of ``height`` x ``width``."""
    scale = min(target / height, target / width)
    return (
        _multiple_of(scale * height, multiple, target),
        _multiple_of(scale * width, multiple, target),
    )


def to_net_input(rgb: np.ndarray, target: int = 256) -> np.ndarray:
    """``rgb``: HxWx3 uint8.  Returns the float32 CHW network input."""
    h, w = network_size(rgb.shape[0], rgb.shape[1], target)
    image = rgb / 255.0
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
    image = (image - MEAN) / STD
    return np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
