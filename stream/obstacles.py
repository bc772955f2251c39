"""Nearest obstacle per vertical sector, for a robot that needs to know where not to go.

The frame (or a horizontal band of it) is cut into N vertical sectors; each
sector's "nearest" is a high percentile of inverse depth, robust to a single
bright pixel.  It is reported as ``nearness`` (0 = the far end of the frame's
range, 1 = the near end) and, with a calibration, in metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from depthstream.capture.source import Frame
from depthstream.stream.calibration import Calibrator, Fit, Point, stored_fit
from depthstream.stream.config import CalibrationConfig, ObstacleConfig
from depthstream.stream.estimator import DepthMap


@dataclass(frozen=True, kw_only=True)
class Sector:
    index: int
    x0: float
    x1: float
    inverse_depth: float
    nearness: float
    metres: float | None
    warning: bool


@dataclass(frozen=True, kw_only=True)
class ObstacleReading:
    """One frame's readout: a sector per column band, nearest obstacle in each, and the
    calibration that gave the metres (None while uncalibrated)."""

    frame: int
    capture_time: float
    sectors: list[Sector]
    calibration: Fit | None = None

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

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


def read_sectors(
    depth: np.ndarray,
    options: ObstacleConfig,
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
        sectors.append(
            Sector(
                index=i,
                x0=edges[i] / w,
                x1=edges[i + 1] / w,
                inverse_depth=near,
                nearness=nearness,
                metres=metres,
                warning=warning,
            )
        )
    return ObstacleReading(
        frame=frame, capture_time=capture_time, sectors=sectors, calibration=calibration
    )


class ObstacleMeter:
    """The pipeline's readout: each depth map to an :class:`ObstacleReading`, through the
    calibration (refitted per frame when configured)."""

    def __init__(self, options: ObstacleConfig, calibrator: Calibrator) -> None:
        self.options = options
        self._calibrator = calibrator

    @classmethod
    def from_config(
        cls, obstacles: ObstacleConfig, calibration: CalibrationConfig
    ) -> ObstacleMeter:
        c = calibration
        points = [(p[0], p[1], p[2]) for p in c.points]
        return cls(obstacles, Calibrator(stored_fit(c), points, c.radius, c.refit, c.refit_ema))

    @property
    def calibration(self) -> Fit | None:
        return self._calibrator.current

    def calibrate(self, result: Fit, points: Sequence[Point]) -> None:
        """Use a new calibration from the next frame on (safe from any thread)."""
        self._calibrator.use(result, points)

    def read(self, frame: Frame, depth: DepthMap) -> ObstacleReading:
        fit = self._calibrator.update(depth.resized, depth.metric)
        return read_sectors(depth.raw, self.options, fit, frame.seq, frame.wall_time)
