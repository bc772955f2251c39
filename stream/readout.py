"""Per-frame obstacle readout: calibration (optionally refitted) plus sectors."""

from __future__ import annotations

import time

from capture.frame import Frame
from stream.calibration import Calibrator
from stream.config import Config
from stream.estimator import DepthMap
from stream.obstacles import ObstacleOptions, ObstacleReading, read_sectors

# Frames carry monotonic capture times; readings give wall-clock ones a robot can log.
_WALL_OFFSET = time.time() - time.monotonic()


def wall_time(monotonic: float) -> float:
    return monotonic + _WALL_OFFSET


class ObstacleMeter:
    """Turns each depth map into an :class:`ObstacleReading`."""

    def __init__(self, options: ObstacleOptions, calibrator: Calibrator) -> None:
        self.options = options
        self.calibrator = calibrator

    @classmethod
    def from_config(cls, cfg: Config) -> ObstacleMeter:
        c = cfg.calibration
        points = [(p[0], p[1], p[2]) for p in c.points]
        return cls(cfg.obstacles, Calibrator(c.fit(), points, c.radius, c.refit, c.refit_ema))

    def __call__(self, frame: Frame, depth: DepthMap) -> ObstacleReading:
        fit = self.calibrator.update(depth.depth)
        return read_sectors(depth.raw, self.options, fit, frame.seq, wall_time(frame.captured_at))
