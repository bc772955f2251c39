"""One processed frame as the 3-D outputs see it: depth in metres (or relative), the lens,
the point cloud and the laser scan.

The PLY snapshot, the Python API, the ROS 2 recording and the Foxglove stream all
build their messages from a :class:`Scene`, so they agree on units, frames and
which outputs exist: metres, points and a scan only when calibrated, the lens
only when ``[camera]`` gives it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthstream.capture.options import CameraOptions
from depthstream.stream.calibration import Fit, stored_fit
from depthstream.stream.config import CalibrationConfig, GeometryConfig
from depthstream.stream.geometry import Intrinsics, LaserScan, PointCloud, Projector, ply_bytes
from depthstream.stream.obstacles import ObstacleReading
from depthstream.stream.pipeline import Result

METRES = "metres"
RELATIVE = "relative inverse depth"


@dataclass(frozen=True)
class Scene:
    """``depth``: float32 at frame size, metres when ``metric`` else relative inverse depth
    (bigger = nearer).  ``stamp_ns``: the capture time on the wall clock."""

    seq: int
    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    metric: bool
    intrinsics: Intrinsics | None
    cloud: PointCloud | None
    scan: LaserScan | None
    obstacles: ObstacleReading | None

    @property
    def unit(self) -> str:
        return METRES if self.metric else RELATIVE

    @property
    def lens(self) -> str:
        """How the intrinsics are known: calibrated, approximate (a field of view) or unknown."""
        if self.intrinsics is None:
            return "unknown"
        return "approximate (from hfov_deg)" if self.intrinsics.approximate else "calibrated"

    def info(self) -> dict[str, object]:
        """What a reader needs to interpret the depth: its unit and how good the lens is."""
        return {"depth_unit": self.unit, "intrinsics": self.lens}

    def record(self) -> dict[str, object]:
        """The obstacle reading with :meth:`info`, as the robot outputs publish it (JSON)."""
        reading = self.obstacles.to_dict() if self.obstacles is not None else None
        return {**self.info(), "reading": reading}

    def depth_bytes(self) -> bytes:
        """The depth as little-endian float32 rows (a ``32FC1`` image's data)."""
        return np.ascontiguousarray(self.depth, dtype="<f4").tobytes()

    def jpeg(self, quality: int) -> bytes:
        """The camera frame as a JPEG."""
        bgr = cv2.cvtColor(self.rgb, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return data.tobytes()

    def ply(self) -> bytes:
        """The point cloud as a PLY whose header says the unit and the lens."""
        if self.cloud is None:
            raise ValueError("no point cloud: not calibrated, or the lens is unknown")
        return ply_bytes(self.cloud, [f"{k}: {v}" for k, v in self.info().items()])

    def write_ply(self, path: Path) -> None:
        """:meth:`ply` to ``path``, written whole or not at all."""
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(self.ply())
        os.replace(partial, path)


class Scenes:
    """Makes scenes of results with ``[camera]`` and ``[geometry]`` (``projector``) and the
    calibration the result carries, else ``calibration`` (the stored one)."""

    def __init__(self, projector: Projector, calibration: Fit | None = None) -> None:
        self.projector = projector
        self.calibration = calibration

    @classmethod
    def of(
        cls,
        camera: CameraOptions,
        geometry: GeometryConfig,
        calibration: CalibrationConfig | Fit | None = None,
    ) -> Scenes:
        """Scenes with ``[camera]``'s lens, ``[geometry]``, and a calibration: a live fit, or
        the one a ``[calibration]`` section stores."""
        if isinstance(calibration, CalibrationConfig):
            calibration = stored_fit(calibration)
        return cls(Projector(camera, geometry), calibration)

    def gaps(self) -> list[str]:
        """What the 3-D outputs will lack or only approximate, in words for the log."""
        said = []
        if not self.projector.known:
            said.append("no [camera] fx/fy or hfov_deg: no camera info, point cloud or scan")
        elif self.projector.intrinsics(2, 2).approximate:
            said.append("intrinsics from [camera] hfov_deg are approximate")
        if self.calibration is None:
            said.append("not calibrated yet: depth is relative, with no point cloud or scan")
        return said

    def scene(self, result: Result) -> Scene:
        reading = result.obstacles
        fit = (reading.calibration if reading is not None else None) or self.calibration
        return self.make(
            result.frame.seq,
            result.frame.wall_time,
            result.frame.rgb,
            result.depth.resized,
            fit,
            reading,
        )

    def make(
        self,
        seq: int,
        wall_time: float,
        rgb: np.ndarray,
        inverse_depth: np.ndarray,
        fit: Fit | None,
        obstacles: ObstacleReading | None = None,
    ) -> Scene:
        """A scene of one image's depth (``fit`` None: relative, no points, no scan)."""
        height, width = inverse_depth.shape
        known = self.projector.known
        k = self.projector.intrinsics(width, height) if known else None
        if fit is None:
            depth = inverse_depth.astype(np.float32)
            cloud = scan = None
        else:
            depth = fit.metres(inverse_depth).astype(np.float32)
            cloud = self.projector.points(depth, rgb) if known else None
            scan = self.projector.scan(depth) if known else None
        stamp = round(wall_time * 1e9)
        return Scene(seq, stamp, rgb, depth, fit is not None, k, cloud, scan, obstacles)
