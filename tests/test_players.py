"""Players and cameras nobody here wrote: GStreamer's webrtcbin over WHEP (the engine of
``whepsrc``), an HLS live playlist and an MJPEG camera made by FFmpeg."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from depthstream.capture.file import FileSource
from depthstream.capture.options import NetworkOptions
from depthstream.capture.sample import SAMPLE_PATH
from depthstream.capture.source import Source
from depthstream.capture.spec import open_source
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from tests.conftest import ROOT, require
from tests.sinks import CallSink
from tests.tools.rtsp import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
WEBRTCBIN_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
    "from gi.repository import Gst; Gst.init(None);"
    "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc')"
)


def webrtcbin_available() -> bool:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", WEBRTCBIN_PROBE], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_gstreamer_webrtcbin_whep_viewer_decodes_depth(tmp_path) -> None:
    """Without the DTLS-server answer this viewer's handshake fails ("no shared cipher")."""
    for tool in ("unshare", "ip"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.geteuid() == 0, "a network namespace needs root")
    require(
        webrtcbin_available(),
        "GStreamer webrtcbin (gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice) is not installed",
    )
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            "--",
            sys.executable,
            str(ROOT / "tests/tools/whep_interop.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    log = (tmp_path / "server.log").read_text() if (tmp_path / "server.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    viewer = out["viewer"]
    assert viewer["errors"] == [] and viewer["status"] == 201, viewer
    assert viewer["connection"] == "connected"
    assert viewer["frames"] > 25 and (viewer["width"], viewer["height"]) == (640, 272)
    assert out["server_exit"] == 0


def one_second_gops(path: Path) -> Path:
    """The sample clip with a key frame every second, so HLS can cut 1 s segments by copying."""
    with av.open(str(SAMPLE_PATH)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream("libx264", rate=25, options={"sc_threshold": "0", "bf": "0"})
        out.width, out.height, out.pix_fmt = 640, 272, "yuv420p"
        out.codec_context.gop_size = 25
        for i, frame in enumerate(src.decode(video=0)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            dst.mux(out.encode(frame))
        dst.mux(out.encode(None))
    return path


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass


def ffmpeg(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def clip(tmp_path) -> Path:
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    return one_second_gops(tmp_path / "gop.mp4")


@pytest.fixture
def hls(clip: Path, tmp_path: Path) -> Iterator[str]:
    """FFmpeg writing a live playlist of 1 s segments, served by an HTTP server on 127.0.0.1."""
    folder = tmp_path / "hls"
    folder.mkdir()
    playlist = folder / "live.m3u8"
    writer = ffmpeg(
        "-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+omit_endlist", str(playlist),
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.monotonic() + 30
    while not playlist.exists() or playlist.read_text().count(".ts") < 4:
        assert time.monotonic() < deadline and writer.poll() is None, writer.stderr.read()
        time.sleep(0.2)
    yield f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
    server.shutdown()
    server.server_close()
    writer.kill()
    writer.wait()


def watch(source: Source, estimator, seconds: float) -> tuple[Pipeline, np.ndarray]:
    """Run ``source`` for ``seconds``; per result: (s since start, age ms, source delay ms)."""
    start = time.monotonic()
    seen: list[tuple[float, float, float]] = []

    def record(result) -> None:
        seen.append((time.monotonic() - start, result.age_ms, result.frame.source_delay * 1000))

    renderer = DepthRenderer(EmaNormalizer(), "inferno")
    pipeline = Pipeline(source, estimator, renderer, [CallSink(record)])
    pipeline.start()
    time.sleep(seconds)
    pipeline.join()
    return pipeline, np.array(seen)


def steady_fps(seen: np.ndarray, after: float = 3.0) -> float:
    """Frames processed per second from ``after`` s into a :func:`watch` run to its end."""
    late = seen[seen[:, 0] > after, 0]
    return len(late) / max(float(late[-1]) - after, 1e-3) if len(late) else 0.0


def test_an_hls_camera_is_played_at_its_pace_and_does_not_fall_behind(
    hls: str, clip: Path, estimator
) -> None:
    """HLS hands over a whole segment at once; paced by its timestamps the pipeline keeps
    up with the model instead of one frame per segment, and the age does not grow."""
    _, file_seen = watch(FileSource(clip, live=True), estimator, 15)
    as_hls, seen = watch(open_source(hls), estimator, 15)
    # In steady state: the HLS player's start-up backlog is skipped on purpose.
    file_fps, hls_fps = steady_fps(file_seen), steady_fps(seen)
    summary = as_hls.summary()
    print(
        f"\n[latency] HLS 1 s segments: {hls_fps:.1f} fps (file, live: {file_fps:.1f}); "
        f"age since arrival p50 {summary['frame_age_ms']['p50']:.0f} ms, "
        f"source delay p50 {summary['source_delay_ms']['p50']:.0f} ms "
        f"p95 {summary['source_delay_ms']['p95']:.0f} ms"
    )
    assert hls_fps >= 0.8 * file_fps
    # Since the scene (arrival + source delay), frames stay as old as they were: the age
    # swings by a few hundred ms with the segments' arrival, so late frames are held to the
    # early ones' range, which a lag growing by even 100 ms a second would leave.
    since_scene = seen[:, 1] + seen[:, 2]
    early = since_scene[(seen[:, 0] > 3) & (seen[:, 0] < 8)]
    late = since_scene[seen[:, 0] > 10]
    assert np.median(late) < np.percentile(early, 95) + 100
    assert summary["source_delay_ms"]["p95"] > 300  # the segments' delay is visible


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (read from the kernel, because a
    probe connection would be the one client FFmpeg's ``-listen 1`` serves)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1] == f"0100007F:{port:04X}" and r.split()[3] == "0A" for r in rows)


@pytest.fixture
def mjpeg() -> Iterator[tuple[str, Callable[[], None]]]:
    """FFmpeg serving an MJPEG HTTP camera (multipart JPEGs) on 127.0.0.1, restartable."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    args = ["-i", str(SAMPLE_PATH), "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg"]
    camera: list[subprocess.Popen] = []

    def start() -> None:
        camera.append(ffmpeg(*args, "-listen", "1", url))
        until(lambda: listening(port), 30)

    def restart() -> None:
        camera[-1].kill()
        camera[-1].wait()
        start()

    start()
    yield url, restart
    camera[-1].kill()
    camera[-1].wait()


def test_an_mjpeg_camera_streams_and_comes_back_after_a_restart(mjpeg, estimator) -> None:
    url, restart = mjpeg
    options = NetworkOptions(read_timeout=2.0, reconnect_initial=0.2, reconnect_max=1.0)
    source = open_source(url, network=options)
    ages: list[float] = []
    renderer = DepthRenderer(EmaNormalizer(), "inferno")
    pipeline = Pipeline(source, estimator, renderer, [CallSink(lambda r: ages.append(r.age_ms))])
    pipeline.start()
    try:
        until(lambda: len(ages) >= 20, 30)
        restart()
        until(lambda: source.status.reconnects >= 1, 30)
        before = len(ages)
        until(lambda: len(ages) >= before + 20, 30)
    finally:
        pipeline.join()
    assert source.status.reconnects >= 1
    print(f"\n[latency] MJPEG over HTTP: age p50 {np.median(ages):.0f} ms")


def until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
