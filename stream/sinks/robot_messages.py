"""What the ROS 2 recording and the live Foxglove stream say of one scene, decided once:
which depth topic, the depth image's layout, the camera model, the time stamp and the
body-to-optical transform.  Each sink only spells these in its own schema."""

from __future__ import annotations

from dataclasses import dataclass

from depthstream.stream.geometry import OPTICAL_IN_BODY
from depthstream.stream.scene import Scene

METRIC_DEPTH, INVERSE_DEPTH = "camera/depth/image", "camera/inverse_depth/image"
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
NO_DISTORTION = (0.0,) * 5


def depth_topic(scene: Scene) -> str:
    """Metres when calibrated, else relative inverse depth (bigger = nearer)."""
    return METRIC_DEPTH if scene.metric else INVERSE_DEPTH


def stamp(ns: int) -> tuple[int, int]:
    """Nanoseconds as ``(seconds, nanoseconds)``, as both schemas carry time."""
    sec, nanosec = divmod(ns, 1_000_000_000)
    return sec, nanosec


@dataclass(frozen=True, kw_only=True)
class DepthImage:
    """The depth map as a 32-bit float image, on its :func:`depth_topic`."""

    topic: str
    width: int
    height: int
    step: int
    data: bytes
    encoding: str = "32FC1"

    @classmethod
    def of(cls, scene: Scene) -> DepthImage:
        height, width = scene.depth.shape
        return cls(
            topic=depth_topic(scene),
            width=width,
            height=height,
            step=4 * width,
            data=scene.depth_bytes(),
        )


@dataclass(frozen=True, kw_only=True)
class CameraModel:
    """The pinhole model of the frame (no distortion), when ``[camera]`` gives the lens."""

    width: int
    height: int
    k: list[float]
    p: list[float]
    r: tuple[float, ...] = IDENTITY
    d: tuple[float, ...] = NO_DISTORTION
    distortion_model: str = "plumb_bob"

    @classmethod
    def of(cls, scene: Scene) -> CameraModel | None:
        if scene.intrinsics is None:
            return None
        height, width = scene.depth.shape
        return cls(width=width, height=height, k=scene.intrinsics.k, p=scene.intrinsics.p)


@dataclass(frozen=True, kw_only=True)
class BodyToOptical:
    """The fixed transform from the body-aligned scan frame to the camera's optical frame
    (no translation; the rotation turns x forward, y left into x right, y down)."""

    parent: str
    child: str
    rotation: tuple[float, float, float, float] = OPTICAL_IN_BODY
