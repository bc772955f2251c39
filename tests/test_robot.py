"""ROS 2 without ROS: the MCAP recording read back by decoders that are not the writer's,
and the live Foxglove server driven by a plain Foxglove WebSocket protocol client."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from tests.conftest import assert_clean_error, run_synthetic
from tests.tools.rtsp import free_port
from tests.tools.serving import frames_processed, start_serve, stop

FX, FY, CX, CY = 500.0, 480.0, 322.0, 130.0
CALIBRATED = (
    "[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n"
    f"[camera]\nfx = {FX}\nfy = {FY}\ncx = {CX}\ncy = {CY}\n"
)
FRAMES = 6


def _record(tmp_path: Path, config: str, frames: int = FRAMES) -> subprocess.CompletedProcess:
    (tmp_path / "c.toml").write_text(config)
    proc = run_synthetic(
        "run", "sample", "--config", "c.toml", "--display", "none", "--frames", str(frames),
        "--record-mcap", "out.mcap", "--stats-json", "s.json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def _by_topic(path: Path) -> dict[str, list]:
    """Every message, decoded by ``rosbags``' own ROS 2 Jazzy types (not the file's schemas)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    topics: dict[str, list] = {}
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            decoded = store.deserialize_cdr(message.data, schema.name)
            topics.setdefault(channel.topic, []).append((message.log_time, decoded))
    return topics


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def test_mcap_recording_reads_back_as_ros2_messages(tmp_path: Path) -> None:
    started = time.time()
    _record(tmp_path, CALIBRATED)
    path = tmp_path / "out.mcap"
    assert not (tmp_path / "out.mcap.part").exists()
    frames = json.loads((tmp_path / "s.json").read_text())["frames_processed"]
    assert frames == FRAMES

    # mcap-ros2-support's decoder (from the schemas in the file) sees the same types.
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        types = {ch.topic: summary.schemas[ch.schema_id].name for ch in summary.channels.values()}
        assert all(ch.message_encoding == "cdr" for ch in summary.channels.values())
        decoded = sum(1 for _ in reader.iter_decoded_messages())
        (meta,) = list(reader.iter_metadata())
    assert types == {
        "/camera/image/compressed": "sensor_msgs/msg/CompressedImage",
        "/camera/depth/image": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camera/points": "sensor_msgs/msg/PointCloud2",
        "/scan": "sensor_msgs/msg/LaserScan",
        "/depthstream/obstacles": "std_msgs/msg/String",
        "/tf_static": "tf2_msgs/msg/TFMessage",
    }
    assert decoded == 6 * FRAMES + 1
    assert meta.metadata["depth_unit"] == "metres" and meta.metadata["intrinsics"] == "calibrated"

    topics = _by_topic(path)
    assert {t: len(m) for t, m in topics.items()} == {
        **{t: FRAMES for t in types if t != "/tf_static"},
        "/tf_static": 1,
    }
    # One stamp per frame, the capture time, the same on every topic, as the log time too.
    stamps = [_stamp(m.header) for _, m in topics["/camera/depth/image"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == FRAMES
    assert started * 1e9 < stamps[0] and stamps[-1] < time.time() * 1e9
    for topic in ("/camera/image/compressed", "/camera/camera_info", "/camera/points", "/scan"):
        assert [_stamp(m.header) for _, m in topics[topic]] == stamps
        assert [log_time for log_time, _ in topics[topic]] == stamps

    for (_, image), (_, depth), (_, info), (_, cloud), (_, scan) in zip(
        topics["/camera/image/compressed"],
        topics["/camera/depth/image"],
        topics["/camera/camera_info"],
        topics["/camera/points"],
        topics["/scan"],
        strict=True,
    ):
        assert image.format == "jpeg" and image.header.frame_id == "camera_optical_frame"
        bgr = cv2.imdecode(np.frombuffer(image.data.tobytes(), np.uint8), cv2.IMREAD_COLOR)
        assert bgr.shape == (272, 640, 3)

        assert (depth.encoding, depth.width, depth.height) == ("32FC1", 640, 272)
        assert depth.step == 4 * 640 and not depth.is_bigendian
        metres = np.frombuffer(depth.data.tobytes(), "<f4").reshape(272, 640)
        assert np.isfinite(metres).mean() > 0.99 and np.nanmin(metres) > 0

        assert (info.width, info.height, info.distortion_model) == (640, 272, "plumb_bob")
        assert np.allclose(info.k, [FX, 0, CX, 0, FY, CY, 0, 0, 1])
        assert np.allclose(info.p, [FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0])

        # The points reproject onto their pixels, at the depth image's value there.
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
        assert all(f.datatype == 7 and f.count == 1 for f in cloud.fields)
        assert cloud.point_step == 16 and cloud.height == 1 and cloud.width > 5000
        points = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 4)
        assert len(points) == cloud.width and cloud.row_step == 16 * cloud.width
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        u, v = FX * x / z + CX, FY * y / z + CY
        ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
        assert np.abs(u - ui).max() < 1e-2 and np.abs(v - vi).max() < 1e-2
        assert set(np.unique(ui % 4)) == {0} and set(np.unique(vi % 4)) == {0}  # stride 4
        assert np.allclose(metres[vi, ui], z, rtol=1e-6)
        assert (z <= 10.0).all()  # max_range
        packed = points[:, 3].view(np.uint32)
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
        assert np.abs(rgb - bgr[vi, ui][:, ::-1].astype(int)).mean() < 12  # JPEG's loss

        # The scan: angles from the lens, the nearest range straight ahead in the band.
        assert scan.header.frame_id == "camera_link"
        assert len(scan.ranges) == 640
        assert math.isclose(scan.angle_max, math.atan(CX / FX), rel_tol=1e-5)
        assert math.isclose(scan.angle_min, -math.atan((639 - CX) / FX), rel_tol=1e-5)
        span = scan.angle_max - scan.angle_min
        assert math.isclose(scan.angle_increment, span / 639, rel_tol=1e-5)
        ahead = round(-scan.angle_min / scan.angle_increment)
        band = metres[int(0.45 * 272) : int(0.55 * 272), round(CX)]
        assert math.isclose(scan.ranges[ahead], band.min(), rel_tol=0.02)

    ((_, tf),) = topics["/tf_static"]
    (t,) = tf.transforms
    assert (t.header.frame_id, t.child_frame_id) == ("camera_link", "camera_optical_frame")
    q = t.transform.rotation
    rotation = _rotation(q.x, q.y, q.z, q.w)
    # Optical z (forward) is the body's x, optical x (right) the body's -y.
    assert np.allclose(rotation @ [0, 0, 1], [1, 0, 0])
    assert np.allclose(rotation @ [1, 0, 0], [0, -1, 0])

    reading = json.loads(topics["/depthstream/obstacles"][0][1].data)
    assert reading["depth_unit"] == "metres" and reading["reading"]["calibrated"]
    assert len(reading["reading"]["sectors"]) == 5

    # rosbags' own reader opens the file as a bag.
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as bag:
        assert {c.topic: c.msgcount for c in bag.connections}["/scan"] == FRAMES


def _rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_mcap_without_calibration_or_lens_says_what_it_lacks(tmp_path: Path) -> None:
    proc = _record(tmp_path, "", frames=3)
    assert "no [camera] fx/fy or hfov_deg" in proc.stderr
    assert "not calibrated yet" in proc.stderr
    topics = _by_topic(tmp_path / "out.mcap")
    assert set(topics) == {
        "/camera/image/compressed",
        "/camera/inverse_depth/image",
        "/depthstream/obstacles",
        "/tf_static",
    }
    reading = json.loads(topics["/depthstream/obstacles"][0][1].data)
    assert (reading["depth_unit"], reading["intrinsics"]) == ("relative inverse depth", "unknown")


def test_mcap_with_a_field_of_view_says_the_lens_is_approximate(tmp_path: Path) -> None:
    config = "[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n[camera]\nhfov_deg = 70.0\n"
    proc = _record(tmp_path, config, frames=2)
    assert "approximate" in proc.stderr
    with open(tmp_path / "out.mcap", "rb") as f:
        (meta,) = list(make_reader(f).iter_metadata())
    assert meta.metadata["intrinsics"] == "approximate (from hfov_deg)"
    info = _by_topic(tmp_path / "out.mcap")["/camera/camera_info"][0][1]
    assert math.isclose(info.k[0], 320 / math.tan(math.radians(35)), rel_tol=1e-6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--record-mcap", "/proc/nope/out.mcap"), "folder /proc/nope does not exist"),
        (("--foxglove", "localhost:http"), "give PORT or HOST:PORT"),
        (("--foxglove", "70000"), "give PORT or HOST:PORT"),
    ],
)
def test_bad_robot_options_are_one_line_errors(tmp_path: Path, flags, message) -> None:
    proc = run_synthetic(
        "run", "sample", "--display", "none", "--frames", "2", *flags, cwd=tmp_path
    )
    assert message in assert_clean_error(proc)


# --- Foxglove --------------------------------------------------------------------------

# foxglove-sdk's server speaks the Foxglove WebSocket protocol under its current name; the
# protocol is foxglove.websocket.v1's, renamed. Clients offer both names, as Foxglove's app does.
SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
MESSAGE_DATA = 0x01


class FoxgloveClient:
    """A Foxglove WebSocket protocol client written from the spec: it reads the
    advertisements, subscribes, and decodes protobuf messages with the advertised schemas."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.channels: dict[int, dict] = {}
        self.server_info: dict = {}
        self._classes: dict[int, type] = {}
        self._subscriptions: dict[int, int] = {}

    async def read_advertisements(self, topics: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.channels) < topics:
            text = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
            message = json.loads(text)
            if message["op"] == "serverInfo":
                self.server_info = message
            elif message["op"] == "advertise":
                for channel in message["channels"]:
                    self.channels[channel["id"]] = channel

    async def subscribe(self, channel_ids: list[int]) -> None:
        subscriptions = []
        for channel_id in channel_ids:
            sub = len(self._subscriptions) + 1
            self._subscriptions[sub] = channel_id
            subscriptions.append({"id": sub, "channelId": channel_id})
        await self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))

    def _decode(self, channel_id: int, payload: bytes):
        channel = self.channels[channel_id]
        if channel["encoding"] == "json":
            return json.loads(payload)
        assert channel["encoding"] == "protobuf"
        if channel_id not in self._classes:
            files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
            pool = descriptor_pool.DescriptorPool()
            for file in files.file:
                pool.Add(file)
            descriptor = pool.FindMessageTypeByName(channel["schemaName"])
            self._classes[channel_id] = message_factory.GetMessageClass(descriptor)
        return self._classes[channel_id].FromString(payload)

    async def messages(self, wanted: set[str], timeout: float = 60.0) -> dict[str, object]:
        """The first decoded message of each topic in ``wanted``."""
        got: dict[str, object] = {}
        deadline = time.monotonic() + timeout
        while set(got) != wanted:
            data = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
            if isinstance(data, str) or data[0] != MESSAGE_DATA:
                continue
            sub, log_time = struct.unpack_from("<IQ", data, 1)
            channel_id = self._subscriptions[sub]
            topic = self.channels[channel_id]["topic"]
            if topic not in got:
                got[topic] = (log_time, self._decode(channel_id, data[13:]))
        return got


TOPICS = {
    "/camera/image/compressed": "foxglove.CompressedImage",
    "/camera/depth/image": "foxglove.RawImage",
    "/camera/inverse_depth/image": "foxglove.RawImage",
    "/camera/calibration": "foxglove.CameraCalibration",
    "/camera/points": "foxglove.PointCloud",
    "/scan": "foxglove.LaserScan",
    "/tf": "foxglove.FrameTransforms",
    "/depthstream/obstacles": "",
}


def test_foxglove_viewer_sees_every_stream_and_a_stalled_one_slows_nothing(tmp_path) -> None:
    import websockets

    fox = free_port()
    proc, base = start_serve(tmp_path, "--foxglove", f"127.0.0.1:{fox}", config=CALIBRATED)
    try:

        async def session() -> tuple[dict, float]:
            async with websockets.connect(
                f"ws://127.0.0.1:{fox}", subprotocols=SUBPROTOCOLS, max_size=None
            ) as ws:
                assert ws.subprotocol == "foxglove.sdk.v1"
                client = FoxgloveClient(ws)
                await client.read_advertisements(len(TOPICS))
                assert client.server_info.get("name") == "depthstream"
                advertised = {c["topic"]: c.get("schemaName", "") for c in client.channels.values()}
                assert {t: advertised[t] for t in TOPICS if TOPICS[t]} == {
                    t: s for t, s in TOPICS.items() if s
                }
                await client.subscribe(list(client.channels))
                wanted = set(TOPICS) - {"/camera/inverse_depth/image"}  # calibrated: metres
                got = await client.messages(wanted)

                # Stalled: subscribed to everything, reading nothing, for a while.
                before, t0 = frames_processed(base), time.monotonic()
                await asyncio.sleep(8)
                stalled_rate = (frames_processed(base) - before) / (time.monotonic() - t0)
            return got, stalled_rate

        before, t0 = frames_processed(base), time.monotonic()
        time.sleep(8)
        free_rate = (frames_processed(base) - before) / (time.monotonic() - t0)
        got, stalled_rate = asyncio.run(session())
        assert proc.poll() is None
    finally:
        err = stop(proc)
    assert "Foxglove: open ws://127.0.0.1" in err

    stamp, image = got["/camera/image/compressed"]
    assert image.format == "jpeg" and image.frame_id == "camera_optical_frame"
    bgr = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr.shape == (272, 640, 3)
    assert stamp == image.timestamp.seconds * 1_000_000_000 + image.timestamp.nanos
    _, depth = got["/camera/depth/image"]
    assert (depth.encoding, depth.width, depth.height, depth.step) == ("32FC1", 640, 272, 2560)
    metres = np.frombuffer(depth.data, "<f4")
    assert metres.size == 640 * 272 and np.nanmin(metres) > 0
    _, calibration = got["/camera/calibration"]
    assert list(calibration.K) == [FX, 0, CX, 0, FY, CY, 0, 0, 1]
    _, cloud = got["/camera/points"]
    assert cloud.point_stride == 16 and len(cloud.data) % 16 == 0 and len(cloud.data) > 16 * 5000
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "red", "green", "blue", "alpha"]
    xyz = np.frombuffer(cloud.data, np.uint8).reshape(-1, 16)[:, :12].copy().view("<f4")
    u = FX * xyz[:, 0] / xyz[:, 2] + CX
    assert np.abs(u - np.rint(u)).max() < 1e-2
    _, scan = got["/scan"]
    assert scan.frame_id == "camera_link" and len(scan.ranges) == 640
    assert math.isclose(scan.start_angle, -math.atan((639 - CX) / FX), rel_tol=1e-5)
    _, tf = got["/tf"]
    (transform,) = tf.transforms
    assert (transform.parent_frame_id, transform.child_frame_id) == (
        "camera_link",
        "camera_optical_frame",
    )
    _, reading = got["/depthstream/obstacles"]
    assert reading["depth_unit"] == "metres" and reading["intrinsics"] == "calibrated"

    # A viewer that stopped reading costs the pipeline no frames (a blocked one would stop it).
    print(f"[foxglove] fps without a viewer {free_rate:.1f}, with a stalled one {stalled_rate:.1f}")
    assert stalled_rate > 0.6 * free_rate


def test_several_cameras_share_one_foxglove_server_each_under_its_name(tmp_path) -> None:
    """Two cameras, one calibrated in its own ``[cameras.calibration]``: one server
    advertises both cameras' topics under their names, frames named after them, metres
    for the calibrated camera and relative depth for the other."""
    import websockets

    fox = free_port()
    config = (
        f"[camera]\nfx = {FX}\nfy = {FY}\ncx = {CX}\ncy = {CY}\n"
        '[[cameras]]\nname = "door"\nsource = "sample"\n'
        "[cameras.calibration]\nscale = 0.02\nshift = 0.1\n"
        '[[cameras]]\nname = "yard"\nsource = "sample"\n'
    )
    proc, _ = start_serve(tmp_path, "--foxglove", f"127.0.0.1:{fox}", config=config, source=None)
    try:

        async def session() -> dict:
            async with websockets.connect(
                f"ws://127.0.0.1:{fox}", subprotocols=SUBPROTOCOLS, max_size=None
            ) as ws:
                client = FoxgloveClient(ws)
                await client.read_advertisements(2 * len(TOPICS))
                topics = {c["topic"] for c in client.channels.values()}
                assert topics == {f"/{n}{t}" for n in ("door", "yard") for t in TOPICS}
                wanted = {
                    "/door/camera/depth/image",
                    "/yard/camera/inverse_depth/image",
                    "/door/scan",
                    "/yard/tf",
                }
                await client.subscribe(
                    [i for i, c in client.channels.items() if c["topic"] in wanted]
                )
                return await client.messages(wanted)

        got = asyncio.run(session())
    finally:
        err = stop(proc)
    assert "yard: not calibrated yet" in err and "door: not calibrated" not in err
    _, door_depth = got["/door/camera/depth/image"]
    assert door_depth.frame_id == "door/camera_optical_frame"
    assert np.nanmin(np.frombuffer(door_depth.data, "<f4")) > 0
    _, yard_depth = got["/yard/camera/inverse_depth/image"]
    assert yard_depth.frame_id == "yard/camera_optical_frame"
    _, scan = got["/door/scan"]  # the uncalibrated camera has no scan
    assert scan.frame_id == "door/camera_link"
    _, tf = got["/yard/tf"]
    (transform,) = tf.transforms
    assert (transform.parent_frame_id, transform.child_frame_id) == (
        "yard/camera_link",
        "yard/camera_optical_frame",
    )
