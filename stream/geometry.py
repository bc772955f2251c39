"""Metric depth to 3-D: pinhole intrinsics, a coloured point cloud and a laser scan.

Points are in the camera's optical frame as ROS (REP 103) names it: x right,
y down, z forward, metres.  The scan follows ``depthimage_to_laserscan``: one
range per image column of a horizontal band, the nearest in the band, angles
counter-clockwise from the optical axis (left positive), ``ranges[0]`` at
``angle_min`` (the rightmost column); the scan lies in a body-aligned frame at
the camera (x forward, y left, z up), rotated from the optical frame by
:data:`OPTICAL_IN_BODY`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from plyfile import PlyData, PlyElement

from depthstream.capture.options import CameraOptions
from depthstream.stream.config import GeometryConfig
from depthstream.stream.errors import UserError

# The optical frame's orientation in the body-aligned frame, as a quaternion (x, y, z, w):
# roll -90 degrees then yaw -90 degrees, REP 103's camera_link -> camera_optical_frame.
OPTICAL_IN_BODY = (-0.5, 0.5, -0.5, 0.5)


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera in pixels of the frame; ``approximate`` when it was derived from a
    field of view rather than calibrated focal lengths."""

    fx: float
    fy: float
    cx: float
    cy: float
    approximate: bool = False

    @property
    def k(self) -> list[float]:
        """The 3x3 camera matrix, row by row (``CameraInfo.k``)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def p(self) -> list[float]:
        """The 3x4 projection of an undistorted, unrectified camera (``CameraInfo.p``)."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def intrinsics_for(camera: CameraOptions, width: int, height: int) -> Intrinsics:
    """``[camera] fx, fy (cx, cy)`` or, failing those, ``hfov_deg`` for a ``width`` x
    ``height`` frame; the principal point defaults to the image centre."""
    cx = camera.cx if camera.cx > 0 else (width - 1) / 2
    cy = camera.cy if camera.cy > 0 else (height - 1) / 2
    if camera.fx > 0 and camera.fy > 0:
        return Intrinsics(camera.fx, camera.fy, cx, cy)
    if 0 < camera.hfov_deg < 180:
        f = (width / 2) / math.tan(math.radians(camera.hfov_deg) / 2)
        return Intrinsics(f, f, cx, cy, approximate=True)
    raise UserError(
        "3-D output needs the camera's intrinsics: set [camera] fx and fy (pixels), "
        "or hfov_deg (approximate)"
    )


@dataclass(frozen=True)
class PointCloud:
    """``xyz``: (N, 3) float32 metres in the optical frame; ``rgb``: (N, 3) uint8."""

    xyz: np.ndarray
    rgb: np.ndarray


def point_cloud(
    metres: np.ndarray, rgb: np.ndarray, k: Intrinsics, stride: int = 4, max_range: float = 10.0
) -> PointCloud:
    """Every ``stride``-th pixel back-projected; pixels without a depth in (0, ``max_range``]
    are left out."""
    v, u = np.mgrid[0 : metres.shape[0] : stride, 0 : metres.shape[1] : stride]
    z = metres[v, u]
    keep = np.isfinite(z) & (z > 0) & (z <= max_range)
    z, u, v = z[keep], u[keep], v[keep]
    xyz = np.stack([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], axis=1)
    return PointCloud(xyz.astype(np.float32), rgb[v, u].astype(np.uint8))


def ply_bytes(cloud: PointCloud, comments: Sequence[str] = ()) -> bytes:
    """A binary PLY of the coloured points, with ``comments`` in its header."""
    vertices = np.empty(
        len(cloud.xyz),
        dtype=[
            ("x", "f4"),
            ("y", "f4"),
            ("z", "f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
        ],
    )
    for i, axis in enumerate("xyz"):
        vertices[axis] = cloud.xyz[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = cloud.rgb[:, i]
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertices, "vertex")], comments=list(comments)).write(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class LaserScan:
    """``sensor_msgs/LaserScan``'s geometry; ``ranges`` float32 metres, ``inf`` where the
    nearest depth is beyond ``range_max``, ``nan`` where there is none."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray


def laser_scan(
    metres: np.ndarray,
    k: Intrinsics,
    band: tuple[float, float] = (0.45, 0.55),
    range_min: float = 0.1,
    range_max: float = 10.0,
) -> LaserScan:
    """The nearest range per column over the rows ``band`` (fractions of the height)."""
    height, width = metres.shape
    top = min(int(band[0] * height), height - 1)
    rows = metres[top : max(int(band[1] * height), top + 1)]
    u = np.arange(width, dtype=np.float64)
    x = (u - k.cx) / k.fx
    ranges = rows * np.sqrt(1 + x**2)  # along the ray, in the scan plane's projection
    valid = np.isfinite(ranges) & (ranges >= range_min)
    near = np.where(valid & (ranges <= range_max), ranges, np.inf).min(axis=0)
    near[~valid.any(axis=0)] = np.nan
    angles = -np.arctan(x)
    angle_min, angle_max = float(angles[-1]), float(angles[0])
    increment = (angle_max - angle_min) / max(width - 1, 1)
    # Each column goes to its angle's bin (the nearest range wins); a bin no column falls
    # in (near the centre, where columns are widest in angle) takes the column it looks at.
    index = np.clip(np.round((angles - angle_min) / increment).astype(int), 0, width - 1)
    out = np.full(width, np.nan)
    np.fmin.at(out, index, near)
    empty = np.bincount(index, minlength=width) == 0
    theta = angle_min + np.arange(width) * increment
    column = np.clip(np.round(k.cx - k.fx * np.tan(theta)).astype(int), 0, width - 1)
    out[empty] = near[column[empty]]
    return LaserScan(angle_min, angle_max, increment, range_min, range_max, out.astype(np.float32))


class Projector:
    """The point cloud and the scan of metric depth maps, as ``[camera]`` and ``[geometry]``
    say, for frames of any size."""

    def __init__(self, camera: CameraOptions, settings: GeometryConfig) -> None:
        self.camera = camera
        self.settings = settings

    @property
    def known(self) -> bool:
        """Whether ``[camera]`` gives focal lengths or a field of view."""
        c = self.camera
        return (c.fx > 0 and c.fy > 0) or c.hfov_deg > 0

    def check(self) -> None:
        """Raise the one-line error that says what to set, when the intrinsics are unknown."""
        if not self.known:
            intrinsics_for(self.camera, 1, 1)

    def intrinsics(self, width: int, height: int) -> Intrinsics:
        return intrinsics_for(self.camera, width, height)

    def points(self, metres: np.ndarray, rgb: np.ndarray) -> PointCloud:
        k = self.intrinsics(metres.shape[1], metres.shape[0])
        return point_cloud(metres, rgb, k, self.settings.stride, self.settings.max_range)

    def scan(self, metres: np.ndarray) -> LaserScan:
        s = self.settings
        k = self.intrinsics(metres.shape[1], metres.shape[0])
        return laser_scan(metres, k, (s.scan_top, s.scan_bottom), s.range_min, s.max_range)
