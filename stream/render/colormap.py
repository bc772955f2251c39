"""Named colour maps for 0-1 depth maps (near = bright, or the warm end), into reused buffers."""

from __future__ import annotations

import cv2
import numpy as np

from depthstream.stream.config import COLORMAPS

# OpenCV's code for each map; gray is the grey ramp itself.
OPENCV_CODES: dict[str, int | None] = {
    name: None if name == "gray" else getattr(cv2, f"COLORMAP_{name.upper()}") for name in COLORMAPS
}


class Colorizer:
    """Turns a normalized map into a BGR image, reusing its buffers frame after frame.

    Each map is kept as three 256-entry tables, one per BGR channel, applied to
    the grey levels with ``cv2.LUT`` and merged: the same colours as
    ``cv2.applyColorMap`` (tested) at a fraction of its cost, which counts
    when rendering shares the cores with the model.
    """

    def __init__(self, name: str) -> None:
        if name not in OPENCV_CODES:
            raise ValueError(f"unknown colormap {name!r} (known: {', '.join(COLORMAPS)})")
        self.name = name
        code = OPENCV_CODES[name]
        ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
        table = (
            cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR)
            if code is None
            else cv2.applyColorMap(ramp, code)
        )
        self._tables = [np.ascontiguousarray(table[0, :, c]) for c in range(3)]
        self._levels: np.ndarray | None = None
        self._channels: list[np.ndarray] = []
        self._bgr: np.ndarray | None = None

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        """``unit``: float32 map in [0, 1].

        Returns a BGR ``uint8`` image that is valid until the next call.
        """
        h, w = unit.shape
        if self._levels is None or self._levels.shape != (h, w):
            self._levels = np.empty((h, w), np.uint8)
            self._channels = [np.empty((h, w), np.uint8) for _ in range(3)]
            self._bgr = np.empty((h, w, 3), np.uint8)
        # One pass: scale by 255, round half to even, saturate to uint8.
        cv2.convertScaleAbs(unit, dst=self._levels, alpha=255.0)
        for table, channel in zip(self._tables, self._channels, strict=True):
            cv2.LUT(self._levels, table, dst=channel)
        return cv2.merge(self._channels, dst=self._bgr)
