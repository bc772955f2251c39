"""``--publish``: the rendered view pushed over RTSP to a real receiving server (FFmpeg
listening for an ANNOUNCE/RECORD on 127.0.0.1), which is killed and started again."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import assert_clean_error, require, run_synthetic
from tests.tools.rtsp import free_port
from tests.tools.serving import frames_processed, health, metrics, start_serve, stop


def _receiver(port: int, out: Path) -> subprocess.Popen:
    """FFmpeg as the media server: takes one RECORD session and keeps its H.264 as MPEG-TS."""
    return subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_flags", "listen",
            "-i", f"rtsp://127.0.0.1:{port}/depth", "-c", "copy", "-f", "mpegts", str(out),
        ],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _publish(base: str) -> dict:
    return health(base)["outputs"]["publish"]


def _heat_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _heat_share(image: np.ndarray) -> float:
    """Warm, saturated pixels (inferno's orange, red, purple), not grey."""
    b, _, r = (image[..., i].astype(int) for i in range(3))
    return float(((r - b > 40) & (r > 80)).mean())


def test_published_depth_reaches_the_server_and_survives_its_restart(tmp_path: Path) -> None:
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    port = free_port()
    first, second = tmp_path / "first.ts", tmp_path / "second.ts"
    receiver = _receiver(port, first)
    proc, base = start_serve(tmp_path, "--publish", f"rtsp://127.0.0.1:{port}/depth")
    try:
        _until(lambda: _publish(base)["sent"] > 60, 60, "frames to be published")
        assert _publish(base)["state"] == "publishing"

        receiver.kill()
        receiver.wait()
        _until(lambda: _publish(base)["state"] == "reconnecting", 20, "the loss to be noticed")
        # The server is away: the pipeline goes on, and the publisher drops frames.
        before, dropped = frames_processed(base), _publish(base)["dropped"]
        time.sleep(4)
        assert frames_processed(base) > before + 20
        assert _publish(base)["dropped"] > dropped

        sent = _publish(base)["sent"]
        receiver = _receiver(port, second)
        _until(lambda: _publish(base)["reconnects"] == 1, 30, "a reconnect")
        _until(lambda: _publish(base)["sent"] > sent + 60, 60, "frames after the reconnect")
        text = metrics(base)
        assert 'depthstream_output_connected{camera="main",output="publish"} 1' in text
        assert 'depthstream_output_reconnects_total{camera="main",output="publish"} 1' in text
    finally:
        err = stop(proc)
        try:
            receiver.wait(timeout=20)  # the session's TEARDOWN ends it
        except subprocess.TimeoutExpired:
            receiver.kill()
    assert "publishing to rtsp://127.0.0.1" in err and "retrying" in err
    for path in (first, second):
        frames = _heat_frames(path)
        assert len(frames) > 30, path.name
        assert frames[-1].shape == (272, 640, 3)
        assert np.median([_heat_share(f) for f in frames]) > 0.2, "no heat map in the stream"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8554/x", "rtsp://127.0.0.1:8554", "rtsp:///x", "nonsense"]
)
def test_a_bad_publish_url_is_a_one_line_error(tmp_path: Path, url: str) -> None:
    proc = run_synthetic("run", "sample", "--display", "none", "--publish", url, cwd=tmp_path)
    assert "give rtsp://HOST[:PORT]/PATH" in assert_clean_error(proc)
