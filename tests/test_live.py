"""Live capture: bounded queues, file pacing, the webcam code path, clean shutdown."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthstream.capture.camera import CameraSource
from depthstream.capture.errors import SourceError
from depthstream.capture.file import FileSource
from depthstream.capture.source import Frame, SourceStatus
from depthstream.capture.spec import open_source
from depthstream.stream.frame_queue import FrameQueue
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from tests.conftest import assert_clean_error, cli_command, run_synthetic
from tests.media import count_frames, short_clip
from tests.sinks import CallSink

STATS_KEYS = {
    "frames_captured",
    "frames_processed",
    "frames_dropped",
    "fps",
    "inference_ms",
    "frame_age_ms",
    "reconnects",
    "peak_rss_mb",
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", 30)


def test_live_queue_keeps_only_the_newest_and_counts_drops() -> None:
    q: FrameQueue[int] = FrameQueue(1, drop_oldest=True)
    for i in range(5):
        assert q.put(i)
    assert len(q) == 1 and q.dropped == 4 and q.put_count == 5
    assert q.get(timeout=0) == 4


def test_offline_queue_waits_instead_of_dropping() -> None:
    q: FrameQueue[int] = FrameQueue(2, drop_oldest=False)
    assert q.put(1) and q.put(2)
    assert not q.put(3, timeout=0.05)
    got: list[int | None] = []
    reader = threading.Thread(target=lambda: got.extend([q.get(1), q.get(1), q.get(1)]))
    reader.start()
    assert q.put(3, timeout=1)
    reader.join()
    assert got == [1, 2, 3] and q.dropped == 0


def test_closed_queue_drains_then_returns_none_and_refuses_puts() -> None:
    q: FrameQueue[int] = FrameQueue(3, drop_oldest=False)
    q.put(7)
    q.close()
    assert not q.put(8)
    assert q.get(0.1) == 7 and q.get(0.1) is None


def test_live_file_is_paced_at_its_frame_rate(clip: Path) -> None:
    source = FileSource(clip, live=True)
    try:
        frames = list(source)
    finally:
        source.close()
    assert len(frames) == 30
    wall = frames[-1].captured_at - frames[0].captured_at
    media = frames[-1].pts - frames[0].pts
    assert media == pytest.approx(29 / 25)
    assert wall == pytest.approx(media, abs=0.25)


def test_offline_file_is_not_paced_and_loop_repeats(clip: Path) -> None:
    source = FileSource(clip, live=False, loop=True)
    try:
        frames = [f for _, f in zip(range(75), source, strict=False)]
    finally:
        source.close()
    assert [f.seq for f in frames] == list(range(75))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert frames[-1].captured_at - frames[0].captured_at < pts[-1] - pts[0]


def test_webcam_code_path_on_a_file(clip: Path) -> None:
    """No camera device can exist here: the V4L2 source's OpenCV read loop runs on a
    file through OpenCV's FFmpeg backend instead, with the same options applied."""
    source = CameraSource(str(clip), backend=cv2.CAP_FFMPEG)
    try:
        frames = list(source)
    finally:
        source.close()
    assert len(frames) == 30 and source.status.state == "ended"
    assert frames[0].rgb.shape == (136, 320, 3) and frames[0].rgb.dtype == np.uint8
    expected = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG).read()[1]
    np.testing.assert_array_equal(frames[0].rgb, cv2.cvtColor(expected, cv2.COLOR_BGR2RGB))


def test_missing_camera_is_a_clear_error() -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open"):
        open_source("/dev/video9")
    with pytest.raises(SourceError, match="camera 7"):
        open_source("7")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("spec", ["ftp://127.0.0.1/x", "rtps://127.0.0.1/cam"])
def test_wrong_url_scheme_is_a_clear_error(spec: str) -> None:
    proc = run_synthetic("run", spec, "--display", "none")
    assert "unsupported source scheme" in assert_clean_error(proc)


def test_missing_camera_from_the_command_line(tmp_path: Path) -> None:
    proc = run_synthetic("run", "5", "--display", "none", cwd=tmp_path)
    assert "camera 5" in assert_clean_error(proc)


def test_window_without_a_display_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_synthetic("run", "sample", cwd=tmp_path, env={"DISPLAY": ""})
    assert "--display none" in assert_clean_error(proc)


def test_frames_and_duration_end_a_live_run(tmp_path: Path) -> None:
    proc = run_synthetic(
        "run",
        "sample",
        "--display",
        "none",
        "--frames",
        "5",
        "--stats-json",
        "s.json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert set(stats) >= STATS_KEYS and stats["frames_processed"] == 5
    for key in ("inference_ms", "frame_age_ms"):
        assert set(stats[key]) == {"p50", "p95", "max"} and stats[key]["p50"] > 0
    proc = run_synthetic(
        "run",
        "sample",
        "--display",
        "none",
        "--loop",
        "--duration",
        "3",
        "--stats-json",
        "d.json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "d.json").read_text())["frames_processed"] > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_finalises_the_recording(tmp_path: Path, sig: int) -> None:
    proc = subprocess.Popen(
        cli_command(
            "run",
            "sample",
            "--weights",
            "synthetic",
            "--display",
            "none",
            "--loop",
            "--record",
            "rec.mp4",
            "--stats-json",
            "s.json",
        ),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:
            if " fps | infer " in line:  # the first periodic figures: frames are flowing
                break
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    frames = count_frames(tmp_path / "rec.mp4")[0]
    assert frames > 0
    assert json.loads((tmp_path / "s.json").read_text())["frames_processed"] >= frames


def test_pipeline_frame_age_stays_bounded_with_a_slow_consumer(estimator) -> None:
    """A sink that takes 150 ms per frame: frames drop, but none grows old."""
    source = open_source("sample", live_file=True, loop=True)
    pipeline = Pipeline(
        source,
        estimator,
        DepthRenderer(EmaNormalizer(), "inferno"),
        [CallSink(lambda _r: time.sleep(0.15))],
        max_frames=25,
    )
    pipeline.run()
    ages = list(pipeline.stats().frame_age_ms)
    inference = sorted(pipeline.stats().inference_ms)[len(ages) // 2]
    assert pipeline.summary()["frames_dropped"] > 0
    assert np.median(ages[-10:]) < inference + 1000 / 25 + 100
    assert np.median(ages[-10:]) < np.median(ages[:10]) + 100
    stages = ("capture", "inference", "output")
    assert not [t for t in threading.enumerate() if t.name in stages]


def test_the_model_starts_the_next_frame_while_the_last_is_output(estimator) -> None:
    """Frame 0's sink waits until the model has been called on frame 1.  A pipeline that
    ran inference and output in turn would never get there, and the wait would fail."""
    calls: list[int] = []
    second_call = threading.Event()

    def counting_estimator(rgb: np.ndarray):
        calls.append(len(calls))
        if len(calls) == 2:
            second_call.set()
        return estimator(rgb)

    overlapped: list[bool] = []

    def sink(result) -> None:
        if result.frame.seq == 0:
            overlapped.append(second_call.wait(30))

    pipeline = Pipeline(
        open_source("sample", live_file=False),
        counting_estimator,
        DepthRenderer(EmaNormalizer(), "gray"),
        [CallSink(sink)],
        max_frames=3,
    )
    pipeline.run()
    assert overlapped == [True]
    assert pipeline.status().frames_processed == 3 and len(calls) >= 3


def test_bad_frames_are_skipped_and_counted(estimator) -> None:
    """A frame the network cannot take (zero width) is skipped; the run goes on.  It is
    counted as a failed frame, not as one the source could not decode."""

    class Frames:
        """A source that yields such a frame: no real file or camera does."""

        live = False
        size = (64, 64)
        fps = 25.0
        frame_count = 3

        def __init__(self) -> None:
            self.status = SourceStatus()

        def __iter__(self):
            good = np.zeros((64, 64, 3), np.uint8)
            for seq, rgb in enumerate([good, np.zeros((64, 0, 3), np.uint8), good]):
                yield Frame(rgb=rgb, seq=seq, pts=None, captured_at=time.monotonic())

        def stop(self) -> None: ...

        def close(self) -> None: ...

    seen: list[int] = []
    pipeline = Pipeline(
        Frames(),
        estimator,
        DepthRenderer(EmaNormalizer(), "gray"),
        [CallSink(lambda r: seen.append(r.frame.seq))],
    )
    pipeline.run()
    summary = pipeline.summary()
    assert seen == [0, 2] and summary["frames_failed"] == 1 and summary["frames_corrupt"] == 0
