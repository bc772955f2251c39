"""Depth to picture: smoothed normalization, colour map, layout, warning stamp."""

from __future__ import annotations

import cv2
import numpy as np

from stream.colormap import Colorizer
from stream.config import Config
from stream.estimator import DepthMap
from stream.normalizer import EmaNormalizer
from stream.overlay import draw_text


def draw_stamp(image: np.ndarray, text: str) -> None:
    """Write ``text`` in red across the top-left, in place."""
    scale = max(image.shape[1] / 640.0, 0.5)
    draw_text(image, text, (int(10 * scale) + 2, int(34 * scale) + 4), scale, (0, 0, 255))


class DepthRenderer:
    """Renders frames as BGR images (heat map alone, or original | heat map).

    ``stamp`` is written on every image; it is how untrained weights are
    marked, so it cannot be switched off once set.
    """

    def __init__(
        self,
        normalizer: EmaNormalizer,
        colorizer: Colorizer,
        layout: str = "depth",
        stamp: str | None = None,
    ) -> None:
        self.normalizer = normalizer
        self.colorizer = colorizer
        self.layout = layout
        self.stamp = stamp
        self._canvas: np.ndarray | None = None

    @classmethod
    def from_config(cls, cfg: Config, stamp: str | None) -> DepthRenderer:
        n = cfg.normalize
        return cls(
            EmaNormalizer(n.low_percentile, n.high_percentile, n.ema),
            Colorizer(cfg.render.colormap),
            cfg.render.layout,
            stamp,
        )

    def render(self, rgb: np.ndarray, depth: DepthMap) -> np.ndarray:
        """The view for one frame; a reused buffer, valid until the next call."""
        self.normalizer.update(depth.raw)
        heat = self.colorizer(self.normalizer.apply(depth.depth))
        if self.layout == "side-by-side":
            h, w = heat.shape[:2]
            if self._canvas is None or self._canvas.shape != (h, 2 * w, 3):
                self._canvas = np.empty((h, 2 * w, 3), np.uint8)
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=self._canvas[:, :w])
            self._canvas[:, w:] = heat
            view = self._canvas
        else:
            view = heat
        if self.stamp:
            draw_stamp(view, self.stamp)
        return view
