"""Nearest obstacle per vertical sector, for a robot that needs to know where not to go.

The frame (or a horizontal band of it) is cut into N vertical sectors; each
sector's "nearest" is a high percentile of inverse depth, robust to a single
bright pixel.  It is reported as ``nearness`` (0 = the far end of the frame's
range, 1 = the near end) and, with a calibration, in metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stream.calibration import Fit


@dataclass(frozen=True)
class Sector:
    index: int
    x0: float
    x1: float
    inverse_depth: float
    nearness: float
    metres: float | None
    warning: bool


@dataclass(frozen=True)
class ObstacleReading:
    """One frame's readout: a sector per column band, nearest obstacle in each."""

    frame: int
    capture_time: float
    calibrated: bool
    sectors: list[Sector]

    @property
    def nearest(self) -> Sector:
        return max(self.sectors, key=lambda s: s.inverse_depth)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "capture_time": self.capture_time,
            "calibrated": self.calibrated,
            "nearest": self.nearest.index,
            "sectors": [asdict(s) for s in self.sectors],
        }


@dataclass
class ObstacleOptions:
    sectors: int = 5
    band_top: float = 0.0
    band_bottom: float = 1.0
    percentile: float = 95.0
    warn_metres: float = 1.0
    warn_relative: float = 0.8


def read_sectors(
    depth: np.ndarray,
    options: ObstacleOptions,
    calibration: Fit | None,
    frame: int = 0,
    capture_time: float = 0.0,
) -> ObstacleReading:
    """Split ``depth`` (inverse relative, HxW) into sectors and report each one's nearest."""
    h, w = depth.shape
    band = depth[int(options.band_top * h) : max(int(options.band_bottom * h), 1)]
    lo, hi = np.percentile(depth, [2, 98])
    edges = np.linspace(0, w, options.sectors + 1).round().astype(int)
    sectors = []
    for i in range(options.sectors):
        cells = band[:, edges[i] : edges[i + 1]]
        near = float(np.percentile(cells, options.percentile))
        nearness = float(np.clip((near - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
        metres = None if calibration is None else float(calibration.metres(near))
        warning = (
            metres < options.warn_metres
            if metres is not None
            else (nearness > options.warn_relative)
        )
        sectors.append(Sector(i, edges[i] / w, edges[i + 1] / w, near, nearness, metres, warning))
    return ObstacleReading(frame, capture_time, calibration is not None, sectors)
