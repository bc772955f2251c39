"""Named colour maps for 0-1 depth maps (near = bright, or the warm end), into reused buffers."""

from __future__ import annotations

import cv2
import numpy as np

COLORMAPS: dict[str, int | None] = {
    "inferno": cv2.COLORMAP_INFERNO,
    "turbo": cv2.COLORMAP_TURBO,
    "magma": cv2.COLORMAP_MAGMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "plasma": cv2.COLORMAP_PLASMA,
    "jet": cv2.COLORMAP_JET,
    "gray": None,
}


class Colorizer:
    """Turns a normalized map into a BGR image, reusing its buffers frame after frame."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._levels: np.ndarray | None = None
        self._bgr: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        if value not in COLORMAPS:
            raise ValueError(f"unknown colormap {value!r} (known: {', '.join(COLORMAPS)})")
        self._name = value

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        """``unit``: float32 map in [0, 1], used as scratch space (overwritten).

        Returns a BGR ``uint8`` image that is valid until the next call.
        """
        h, w = unit.shape
        if self._levels is None or self._levels.shape != (h, w):
            self._levels = np.empty((h, w), np.uint8)
            self._bgr = np.empty((h, w, 3), np.uint8)
        np.multiply(unit, 255.0, out=unit)
        np.rint(unit, out=unit)
        self._levels[...] = unit
        code = COLORMAPS[self._name]
        if code is None:
            cv2.cvtColor(self._levels, cv2.COLOR_GRAY2BGR, dst=self._bgr)
        else:
            cv2.applyColorMap(self._levels, code, dst=self._bgr)
        return self._bgr
