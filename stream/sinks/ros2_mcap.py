"""A ROS 2 recording: every processed frame as ``sensor_msgs`` messages in an MCAP file.

Topics (all stamped with the frame's capture time, in ``[robot] frame_id``):

- ``/camera/image/compressed``: ``sensor_msgs/msg/CompressedImage``, the camera frame (JPEG)
- ``/camera/depth/image``: ``sensor_msgs/msg/Image`` ``32FC1`` metres, when calibrated;
  else ``/camera/inverse_depth/image``: ``32FC1`` relative inverse depth (bigger = nearer)
- ``/camera/camera_info``: ``sensor_msgs/msg/CameraInfo``, when ``[camera]`` gives the lens
- ``/camera/points``: ``sensor_msgs/msg/PointCloud2`` (x, y, z float32 + packed rgb) and
  ``/scan``: ``sensor_msgs/msg/LaserScan``, when calibrated with a known lens
- ``/depthstream/obstacles``: ``std_msgs/msg/String``, the obstacle reading as JSON
- ``/tf_static``: ``tf2_msgs/msg/TFMessage``, once: the optical frame in the scan's
  body-aligned ``[robot] scan_frame_id``

CDR encoding and the file format are ``mcap-ros2-support``'s; the message
definitions are the ROS 2 Humble interfaces as ``rosbags`` carries them.  The
file is written as ``OUT.mcap.part`` and renamed when finished, so ``OUT.mcap``
is always a whole recording.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from mcap.records import Schema
from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore

from depthstream.stream.config import RobotConfig
from depthstream.stream.errors import UserError
from depthstream.stream.model.registry import DEFAULT_MODEL
from depthstream.stream.pipeline import Result
from depthstream.stream.scene import Scene, Scenes
from depthstream.stream.sinks.robot_messages import BodyToOptical, CameraModel, DepthImage, stamp

TYPES = (
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/LaserScan",
    "std_msgs/msg/String",
    "tf2_msgs/msg/TFMessage",
)
FLOAT32 = 7  # sensor_msgs/PointField datatype


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    sec, nanosec = stamp(stamp_ns)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def camera_info(scene: Scene, model: CameraModel, frame_id: str) -> dict[str, Any]:
    return {
        "header": header(scene.stamp_ns, frame_id),
        "height": model.height,
        "width": model.width,
        "distortion_model": model.distortion_model,
        "d": list(model.d),
        "k": model.k,
        "r": list(model.r),
        "p": model.p,
    }


def packed_points(scene: Scene) -> bytes:
    """x, y, z float32 then the colour as PCL packs it: 0x00RRGGBB in a float32's bytes."""
    assert scene.cloud is not None
    rgb = scene.cloud.rgb.astype(np.uint32)
    points = np.empty((len(rgb), 4), dtype=np.float32)
    points[:, :3] = scene.cloud.xyz
    points[:, 3] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).view(np.float32)
    return points.tobytes()


def point_cloud2(scene: Scene, frame_id: str) -> dict[str, Any]:
    assert scene.cloud is not None
    fields = [
        {"name": name, "offset": 4 * i, "datatype": FLOAT32, "count": 1}
        for i, name in enumerate(("x", "y", "z", "rgb"))
    ]
    count = len(scene.cloud.xyz)
    return {
        "header": header(scene.stamp_ns, frame_id),
        "height": 1,
        "width": count,
        "fields": fields,
        "is_bigendian": False,
        "point_step": 16,
        "row_step": 16 * count,
        "data": packed_points(scene),
        "is_dense": True,
    }


def laser_scan(scene: Scene, frame_id: str, scan_time: float) -> dict[str, Any]:
    s = scene.scan
    assert s is not None
    return {
        "header": header(scene.stamp_ns, frame_id),
        "angle_min": s.angle_min,
        "angle_max": s.angle_max,
        "angle_increment": s.angle_increment,
        "time_increment": 0.0,
        "scan_time": scan_time,
        "range_min": s.range_min,
        "range_max": s.range_max,
        "ranges": s.ranges.tolist(),
        "intensities": [],
    }


def depth_image(scene: Scene, image: DepthImage, frame_id: str) -> dict[str, Any]:
    return {
        "header": header(scene.stamp_ns, frame_id),
        "height": image.height,
        "width": image.width,
        "encoding": image.encoding,
        "is_bigendian": 0,
        "step": image.step,
        "data": image.data,
    }


def static_transform(stamp_ns: int, robot: RobotConfig) -> dict[str, Any]:
    frames = BodyToOptical(parent=robot.scan_frame_id, child=robot.frame_id)
    x, y, z, w = frames.rotation
    transform = {
        "header": header(stamp_ns, frames.parent),
        "child_frame_id": frames.child,
        "transform": {
            "translation": {"x": 0.0, "y": 0.0, "z": 0.0},
            "rotation": {"x": x, "y": y, "z": z, "w": w},
        },
    }
    return {"transforms": [transform]}


class McapRecorder:
    """Sink: writes each result's messages (the module docstring lists them) to ``path``."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        scenes: Scenes,
        robot: RobotConfig,
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.path = Path(path)
        self._model = model
        self._part = self.path.with_name(self.path.name + ".part")
        self._scenes = scenes
        self._robot = robot
        self._scan_time = 1.0 / fps if fps > 0 else 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._part, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror}") from None
        self._writer = Writer(self._file)
        store = get_typestore(Stores.ROS2_HUMBLE)
        self._schemas: dict[str, Schema] = {
            name: self._writer.register_msgdef(name, store.generate_msgdef(name, ros_version=2)[0])
            for name in TYPES
        }
        self._described = False
        self.frames = 0

    def _put(self, topic: str, kind: str, message: dict[str, Any], stamp_ns: int) -> None:
        schema = self._schemas[kind]
        self._writer.write_message(topic, schema, message, stamp_ns, stamp_ns, self.frames)

    def write(self, result: Result) -> None:
        scene = self._scenes.scene(result)
        frame_id, t = self._robot.frame_id, scene.stamp_ns
        if not self._described:
            self._writer.add_metadata(
                "depthstream",
                {
                    **{k: str(v) for k, v in scene.info().items()},
                    "frame_id": frame_id,
                    "model": self._model,
                },
            )
            self._put("/tf_static", "tf2_msgs/msg/TFMessage", static_transform(t, self._robot), t)
            self._described = True
        image = {
            "header": header(t, frame_id),
            "format": "jpeg",
            "data": scene.jpeg(self._robot.jpeg_quality),
        }
        self._put("/camera/image/compressed", "sensor_msgs/msg/CompressedImage", image, t)
        depth = DepthImage.of(scene)
        message = depth_image(scene, depth, frame_id)
        self._put(f"/{depth.topic}", "sensor_msgs/msg/Image", message, t)
        model = CameraModel.of(scene)
        if model is not None:
            info = camera_info(scene, model, frame_id)
            self._put("/camera/camera_info", "sensor_msgs/msg/CameraInfo", info, t)
        if scene.cloud is not None:
            self._put(
                "/camera/points", "sensor_msgs/msg/PointCloud2", point_cloud2(scene, frame_id), t
            )
        if scene.scan is not None:
            scan = laser_scan(scene, self._robot.scan_frame_id, self._scan_time)
            self._put("/scan", "sensor_msgs/msg/LaserScan", scan, t)
        text = {"data": json.dumps(scene.record())}
        self._put("/depthstream/obstacles", "std_msgs/msg/String", text, t)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and give it its name (with no frame recorded, leave nothing)."""
        if self._file.closed:
            return
        self._writer.finish()
        self._file.close()
        if self.frames:
            os.replace(self._part, self.path)
        else:
            self._part.unlink(missing_ok=True)
