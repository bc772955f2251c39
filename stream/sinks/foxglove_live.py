"""A live Foxglove view: the newest result published over the Foxglove WebSocket protocol.

The server is ``foxglove-sdk``'s.  Channels carry Foxglove's own schemas, on
the topics of the ROS 2 recording: the camera frame (CompressedImage), depth
(RawImage ``32FC1``, metres or relative), the lens (CameraCalibration), the
point cloud (PointCloud), the scan (LaserScan, in ``[robot] scan_frame_id``),
the transform between the two frames, and the obstacle reading (JSON).
Messages are built on a thread of their own from the newest result only, and
only for channels a viewer subscribed to; each viewer's queue is short and drops
its oldest message, so a slow or absent viewer never slows the pipeline.
Several cameras share one server (:class:`FoxgloveServer`), each camera's topics
and frames under its name (``/door/camera/points`` in ``door/camera_optical_frame``).
"""

from __future__ import annotations

import threading

import foxglove
import numpy as np
from foxglove import channels
from foxglove import messages as fm

from depthstream.stream.config import RobotConfig
from depthstream.stream.errors import UserError
from depthstream.stream.scene import Scene, Scenes
from depthstream.stream.sinks.latest import LatestResult
from depthstream.stream.sinks.robot_messages import (
    INVERSE_DEPTH,
    METRIC_DEPTH,
    BodyToOptical,
    CameraModel,
    DepthImage,
    depth_topic,
)
from depthstream.stream.sinks.robot_messages import stamp as split_stamp

BACKLOG = 32  # messages per viewer: a few frames' worth


class FoxgloveServer:
    """One Foxglove WebSocket server on ``host``:``port`` for every camera's channels; it
    stops when the last camera's sink is closed."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.context = foxglove.Context()
        self._lock = threading.Lock()
        self._users = 0
        try:
            self._server = foxglove.start_server(
                name="depthstream",
                host=host,
                port=port,
                context=self.context,
                message_backlog_size=BACKLOG,
            )
        except RuntimeError as exc:
            raise UserError(f"--foxglove: cannot listen on {host}:{port}: {exc}") from None

    @property
    def port(self) -> int:
        return self._server.port

    def camera(self, scenes: Scenes, robot: RobotConfig, name: str = "") -> FoxgloveLive:
        """The sink of camera ``name`` ("": the only camera, topics without a prefix)."""
        with self._lock:
            self._users += 1
        return FoxgloveLive(self, scenes, robot, name)

    def release(self) -> None:
        """A camera's sink is done; the last one stops the server."""
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self._server.stop()


class FoxgloveLive:
    """Sink: serves one camera's newest result to the viewers of ``server``."""

    def __init__(
        self, server: FoxgloveServer, scenes: Scenes, robot: RobotConfig, name: str = ""
    ) -> None:
        self._server = server
        self._scenes = scenes
        prefix = f"/{name}" if name else ""
        self._frame_id = f"{prefix}/{robot.frame_id}".lstrip("/")
        self._scan_frame_id = f"{prefix}/{robot.scan_frame_id}".lstrip("/")
        self._jpeg_quality = robot.jpeg_quality
        ctx = server.context
        self.image = channels.CompressedImageChannel(
            f"{prefix}/camera/image/compressed", context=ctx
        )
        self.depth = {
            topic: channels.RawImageChannel(f"{prefix}/{topic}", context=ctx)
            for topic in (METRIC_DEPTH, INVERSE_DEPTH)
        }
        self.calibration = channels.CameraCalibrationChannel(
            f"{prefix}/camera/calibration", context=ctx
        )
        self.points = channels.PointCloudChannel(f"{prefix}/camera/points", context=ctx)
        self.scan = channels.LaserScanChannel(f"{prefix}/scan", context=ctx)
        self.tf = channels.FrameTransformsChannel(f"{prefix}/tf", context=ctx)
        self.obstacles = foxglove.Channel(
            f"{prefix}/depthstream/obstacles", message_encoding="json", context=ctx
        )
        self._latest = LatestResult()
        self._thread = threading.Thread(target=self._publish_loop, name="foxglove", daemon=True)
        self._thread.start()

    def write(self, result) -> None:
        self._latest.write(result)

    def close(self) -> None:
        self._latest.close()
        self._thread.join()
        for channel in self._channels:
            channel.close()
        self._server.release()

    @property
    def _channels(self) -> tuple:
        return (
            self.image,
            *self.depth.values(),
            self.calibration,
            self.points,
            self.scan,
            self.tf,
            self.obstacles,
        )

    def _publish_loop(self) -> None:
        while True:
            result = self._latest.get(timeout=0.5)
            if result is None:
                if self._latest.closed:
                    return
                continue
            if any(channel.has_sinks() for channel in self._channels):
                self.publish(self._scenes.scene(result))

    def publish(self, scene: Scene) -> None:
        """Log ``scene`` on every channel that has a subscriber."""
        t = scene.stamp_ns
        stamp = fm.Timestamp(*split_stamp(t))
        frame = self._frame_id
        if self.image.has_sinks():
            data = scene.jpeg(self._jpeg_quality)
            self.image.log(
                fm.CompressedImage(timestamp=stamp, frame_id=frame, data=data, format="jpeg"),
                log_time=t,
            )
        channel = self.depth[depth_topic(scene)]
        if channel.has_sinks():
            depth = DepthImage.of(scene)
            channel.log(
                fm.RawImage(
                    timestamp=stamp,
                    frame_id=frame,
                    width=depth.width,
                    height=depth.height,
                    encoding=depth.encoding,
                    step=depth.step,
                    data=depth.data,
                ),
                log_time=t,
            )
        model = CameraModel.of(scene)
        if model is not None and self.calibration.has_sinks():
            self.calibration.log(
                fm.CameraCalibration(
                    timestamp=stamp,
                    frame_id=frame,
                    width=model.width,
                    height=model.height,
                    distortion_model=model.distortion_model,
                    D=list(model.d),
                    K=model.k,
                    R=list(model.r),
                    P=model.p,
                ),
                log_time=t,
            )
        if scene.cloud is not None and self.points.has_sinks():
            self.points.log(self._point_cloud(scene, stamp), log_time=t)
        if scene.scan is not None and self.scan.has_sinks():
            s = scene.scan
            self.scan.log(
                fm.LaserScan(
                    timestamp=stamp,
                    frame_id=self._scan_frame_id,
                    start_angle=s.angle_min,
                    end_angle=s.angle_max,
                    ranges=s.ranges.tolist(),
                    intensities=[],
                ),
                log_time=t,
            )
        if self.tf.has_sinks():
            self.tf.log(self._transforms(stamp), log_time=t)
        if self.obstacles.has_sinks():
            self.obstacles.log(scene.record(), log_time=t)

    def _point_cloud(self, scene: Scene, stamp: fm.Timestamp) -> fm.PointCloud:
        assert scene.cloud is not None
        count = len(scene.cloud.xyz)
        packed = np.empty(count, dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
        packed["xyz"] = scene.cloud.xyz
        packed["rgba"][:, :3] = scene.cloud.rgb
        packed["rgba"][:, 3] = 255
        f32, u8 = fm.PackedElementFieldNumericType.Float32, fm.PackedElementFieldNumericType.Uint8
        fields = [
            fm.PackedElementField(name=n, offset=4 * i, type=f32) for i, n in enumerate("xyz")
        ]
        fields += [
            fm.PackedElementField(name=n, offset=12 + i, type=u8)
            for i, n in enumerate(("red", "green", "blue", "alpha"))
        ]
        return fm.PointCloud(
            timestamp=stamp,
            frame_id=self._frame_id,
            point_stride=16,
            fields=fields,
            data=packed.tobytes(),
        )

    def _transforms(self, stamp: fm.Timestamp) -> fm.FrameTransforms:
        frames = BodyToOptical(parent=self._scan_frame_id, child=self._frame_id)
        x, y, z, w = frames.rotation
        transform = fm.FrameTransform(
            timestamp=stamp,
            parent_frame_id=frames.parent,
            child_frame_id=frames.child,
            translation=fm.Vector3(x=0, y=0, z=0),
            rotation=fm.Quaternion(x=x, y=y, z=z, w=w),
        )
        return fm.FrameTransforms(transforms=[transform])
