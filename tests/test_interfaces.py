"""The interfaces are real: every source meets the Source protocol and every output the
Sink protocol, and the window and the page change what is shown only through the
renderer's thread-safe ``configure``."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import cv2
import pytest

from depthstream.capture.camera import CameraSource
from depthstream.capture.file import FileSource
from depthstream.capture.network import NetworkSource
from depthstream.capture.options import CameraOptions
from depthstream.capture.pacing import PacedSource
from depthstream.capture.sample import SAMPLE_PATH
from depthstream.capture.source import Source
from depthstream.capture.spec import open_source
from depthstream.stream.config import GeometryConfig, MqttConfig, PublishConfig, RobotConfig
from depthstream.stream.geometry import Projector
from depthstream.stream.pipeline import Pipeline, Sink
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from depthstream.stream.scene import Scenes
from depthstream.stream.sinks.depth_mkv import DepthRecorder
from depthstream.stream.sinks.foxglove_live import FoxgloveServer
from depthstream.stream.sinks.latest import LatestResult
from depthstream.stream.sinks.mp4 import Mp4Recorder
from depthstream.stream.sinks.mqtt import MqttPublisher
from depthstream.stream.sinks.progress import ProgressBar
from depthstream.stream.sinks.ros2_mcap import McapRecorder
from depthstream.stream.sinks.rtsp_publish import RtspPublisher
from depthstream.stream.sinks.window import WindowDisplay
from depthstream.web.hub import FrameHub
from tests.conftest import ROOT
from tests.test_rtsp import rtsp  # noqa: F401  (the real RTSP server fixture)
from tests.test_web import serve


def classes_with(folder: str, members: set[str]) -> set[str]:
    """Names of the classes under ``folder`` that define every one of ``members`` (protocols
    themselves aside)."""
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            protocol = isinstance(node, ast.ClassDef) and any(
                ast.unparse(base) == "Protocol" for base in node.bases
            )
            if isinstance(node, ast.ClassDef) and not protocol:
                defined = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                if members <= defined:
                    found.add(node.name)
    return found


def test_every_source_meets_the_source_protocol(rtsp, tmp_path: Path) -> None:  # noqa: F811
    """Real instances of each: a file, a real RTSP stream (also paced), and the webcam code
    on a file through OpenCV's FFmpeg backend (no camera device exists here)."""
    sources = [
        FileSource(SAMPLE_PATH),
        NetworkSource(rtsp.url),
        PacedSource(NetworkSource(rtsp.url), 1.5),
        CameraSource(str(SAMPLE_PATH), backend=cv2.CAP_FFMPEG),
    ]
    try:
        for source in sources:
            assert isinstance(source, Source), type(source).__name__
            assert source.size == (272, 640) and source.fps > 0
            assert source.status.state == "running"
            assert next(iter(source)).rgb.shape == (272, 640, 3)
    finally:
        for source in sources:
            source.stop()
            source.close()
    # Every class in capture/ that iterates frames is one of those checked above.
    assert classes_with("capture", {"__iter__", "stop", "close"}) == {
        type(s).__name__ for s in sources
    }


def test_every_output_meets_the_sink_protocol(tmp_path: Path) -> None:
    sinks = [
        Mp4Recorder(tmp_path / "out.mp4", 25.0),
        DepthRecorder(tmp_path / "depth.mkv", 25.0, paced=False),
        WindowDisplay(tmp_path),
        ProgressBar(None),
        LatestResult(),
        FrameHub(),
        RtspPublisher("rtsp://127.0.0.1:9/x", 25.0, PublishConfig()),
        MqttPublisher("mqtt://127.0.0.1:9/ds", "main", lambda: "running", MqttConfig()),
        McapRecorder(
            tmp_path / "out.mcap",
            25.0,
            Scenes(Projector(CameraOptions(), GeometryConfig())),
            RobotConfig(),
        ),
        FoxgloveServer("127.0.0.1", 0).camera(
            Scenes(Projector(CameraOptions(), GeometryConfig())), RobotConfig()
        ),
    ]
    for sink in sinks:
        assert isinstance(sink, Sink), type(sink).__name__
        sink.close()
    names = {type(s).__name__ for s in sinks}
    assert classes_with("stream/sinks", {"write", "close"}) <= names
    assert classes_with("web", {"write", "close"}) <= names


def test_a_pipeline_takes_only_sinks(estimator) -> None:
    pipeline = Pipeline(
        open_source("sample", live_file=False), estimator, DepthRenderer(EmaNormalizer())
    )
    with pipeline, pytest.raises(TypeError, match="not a Sink"):
        pipeline.add_sink(lambda result: None)


class WatchedRenderer(DepthRenderer):
    """A real renderer that also notes every configure call."""

    def __init__(self) -> None:
        super().__init__(EmaNormalizer(), "inferno")
        self.calls: list[dict] = []

    def configure(self, **change):
        self.calls.append(change)
        return super().configure(**change)


def test_the_window_changes_the_picture_through_the_renderer(estimator, tmp_path: Path) -> None:
    renderer = WatchedRenderer()
    pipeline = Pipeline(open_source("sample", live_file=False), estimator, renderer)
    display = WindowDisplay(tmp_path)
    with pipeline:
        display.handle_key(ord("c"), pipeline)
        display.handle_key(ord("f"), pipeline)
    assert renderer.calls == [{"colormap": "turbo"}, {"freeze": True}]
    assert renderer.settings().colormap == "turbo" and renderer.settings().freeze


def test_the_page_changes_the_picture_through_the_renderer(estimator) -> None:
    renderer = WatchedRenderer()

    async def body(client, state):
        answer = await client.post("/api/settings", json={"layout": "side-by-side"})
        assert answer.status == 200
        refused = await client.post("/api/settings", json={"layout": "stacked"})
        assert refused.status == 400

    serve(estimator, body, renderer=renderer)
    assert [change["layout"] for change in renderer.calls] == ["side-by-side", "stacked"]
    assert renderer.settings().layout == "side-by-side"


def test_renderer_state_is_private_to_it() -> None:
    """What a viewer may change lives in underscored attributes, reached only through
    ``settings`` and ``configure``; no other module touches them."""
    source = inspect.getsource(DepthRenderer.__init__)
    for name in ("_normalizer", "_colorizer", "_layout"):
        assert f"self.{name} =" in source
    outside = [
        path.relative_to(ROOT).as_posix()
        for package in ("capture", "stream", "web")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "renderer.py"
        and any(f".{name}" in path.read_text() for name in ("_colorizer", "_layout", "_normalizer"))
    ]
    assert outside == []
