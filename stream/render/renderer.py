"""Depth to picture: smoothed normalization, colour map, layout and the untrained-weights stamp.

One renderer serves a pipeline, and the window or the web page change what it
shows while it renders, so every change goes through :meth:`DepthRenderer.configure`,
which is safe from any thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from depthstream.stream.config import (
    DEPTH_ONLY,
    LAYOUTS,
    SIDE_BY_SIDE,
    NormalizeConfig,
    RenderConfig,
)
from depthstream.stream.estimator import DepthMap
from depthstream.stream.render.colormap import Colorizer
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.overlay import draw_stamp


@dataclass(frozen=True)
class RenderSettings:
    """What a viewer may change: colour map, layout, and whether the colour range is frozen."""

    colormap: str
    layout: str
    freeze: bool


@dataclass(frozen=True)
class View:
    """One rendered frame.

    ``image``: BGR, a buffer the renderer reuses, valid until its next render.
    ``layout``: how it was drawn.  ``far``, ``near``: the colour range it used,
    in relative inverse depth.
    """

    image: np.ndarray
    layout: str
    far: float
    near: float


class DepthRenderer:
    """Renders frames as BGR images: the heat map alone, or the original beside it.

    ``stamp`` is written on every image; it is how untrained weights are
    marked, so it cannot be switched off once set.
    """

    def __init__(
        self,
        normalizer: EmaNormalizer,
        colormap: str = "inferno",
        layout: str = DEPTH_ONLY,
        stamp: str | None = None,
    ) -> None:
        self._normalizer = normalizer
        self._colorizer = Colorizer(colormap)
        self._layout = _checked_layout(layout)
        self.stamp = stamp
        self._canvas: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, normalize: NormalizeConfig, render: RenderConfig, stamp: str | None
    ) -> DepthRenderer:
        n = normalize
        return cls(
            EmaNormalizer(n.low_percentile, n.high_percentile, n.ema),
            render.colormap,
            render.layout,
            stamp,
        )

    def settings(self) -> RenderSettings:
        with self._lock:
            return RenderSettings(self._colorizer.name, self._layout, self._normalizer.frozen)

    def configure(
        self, *, colormap: str | None = None, layout: str | None = None, freeze: bool | None = None
    ) -> RenderSettings:
        """Change what is shown from the next frame on; ``None`` keeps a setting.

        Raises ``ValueError`` naming the first unknown value, before changing anything.
        """
        colorizer = Colorizer(colormap) if colormap is not None else None
        if layout is not None:
            _checked_layout(layout)
        if freeze is not None and not isinstance(freeze, bool):
            raise ValueError("freeze must be true or false")
        with self._lock:
            if colorizer is not None:
                self._colorizer = colorizer
            if layout is not None:
                self._layout = layout
            if freeze is not None:
                self._normalizer.freeze(freeze)
        return self.settings()

    def render(self, rgb: np.ndarray, depth: DepthMap) -> View:
        """The view for one frame (its image is a reused buffer, valid until the next call)."""
        with self._lock:
            far, near = self._normalizer.update(depth.raw)
            heat = self._colorizer(self._normalizer.apply(depth.resized))
            if self._layout == SIDE_BY_SIDE:
                h, w = heat.shape[:2]
                if self._canvas is None or self._canvas.shape != (h, 2 * w, 3):
                    self._canvas = np.empty((h, 2 * w, 3), np.uint8)
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=self._canvas[:, :w])
                self._canvas[:, w:] = heat
                image = self._canvas
            else:
                image = heat
            if self.stamp:
                draw_stamp(image, self.stamp)
            return View(image, self._layout, far, near)


def _checked_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    return layout
