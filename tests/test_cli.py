"""The ``image`` and ``run`` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthstream.capture.file import FileSource
from depthstream.capture.sample import SAMPLE_PATH
from tests.conftest import DATA, assert_clean_error, run_cli, run_synthetic
from tests.media import count_frames, short_clip

CHELSEA = DATA / "cases" / "chelsea" / "chelsea.png"
CAMERA = DATA / "cases" / "camera" / "camera.png"


def test_image_writes_heatmap_raw_and_depth(tmp_path: Path) -> None:
    proc = run_synthetic(
        "image",
        str(CHELSEA),
        "--out",
        "heat.png",
        "--raw",
        "raw.npy",
        "--depth",
        "depth.npy",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "UNTRAINED" in proc.stderr
    heat = cv2.imread(str(tmp_path / "heat.png"))
    assert heat.shape == (300, 451, 3) and heat.std() > 10
    raw, depth = np.load(tmp_path / "raw.npy"), np.load(tmp_path / "depth.npy")
    assert raw.dtype == depth.dtype == np.float32
    assert raw.shape == (160, 256) and depth.shape == (300, 451)
    want = np.load(DATA / "cases" / "chelsea" / "output_resized.npy")
    assert np.abs(depth - want).max() <= 1e-4 * (want.max() - want.min())


def test_image_several_inputs_go_to_out_dir(tmp_path: Path) -> None:
    proc = run_synthetic(
        "image",
        str(CHELSEA),
        str(CAMERA),
        "--out-dir",
        "maps",
        "--raw",
        "--colormap",
        "turbo",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == ["camera_depth.png", "camera_raw.npy", "chelsea_depth.png", "chelsea_raw.npy"]


def test_image_bad_inputs_are_reported_and_good_ones_still_processed(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(CHELSEA.read_bytes()[:50_000])
    bad = ["missing.png", "empty.png", "text.png", "cut.png"]
    proc = run_synthetic("image", *bad, str(CHELSEA), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name, reason in zip(
        bad,
        ["no such file", "empty file", "not a readable image", "not a readable image"],
        strict=True,
    ):
        assert f"{name}: {reason}" in proc.stderr
    assert (tmp_path / "chelsea_depth.png").is_file()


def test_image_exits_nonzero_when_nothing_could_be_processed(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    proc = run_synthetic("image", "text.png", cwd=tmp_path)
    assert "no input could be processed" in assert_clean_error(proc)
    proc = run_cli("image", "missing.png", cwd=tmp_path)
    assert "none of the inputs exists" in assert_clean_error(proc)


def test_run_sample_records_h264_of_every_frame(tmp_path: Path) -> None:
    proc = run_synthetic(
        "run",
        "sample",
        "--frames",
        "12",
        "--display",
        "none",
        "--mode",
        "offline",
        "--record",
        "out.mp4",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert count_frames(tmp_path / "out.mp4") == (12, 640, 272, "h264")


def test_run_side_by_side_of_a_whole_file_offline(tmp_path: Path) -> None:
    """Offline (headless + record) processes every frame of the file."""
    short_clip(tmp_path / "short.mp4", 20)
    proc = run_synthetic(
        "run",
        "short.mp4",
        "--layout",
        "side-by-side",
        "--display",
        "none",
        "--record",
        "short_depth.mp4",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert count_frames(tmp_path / "short_depth.mp4") == (20, 640, 136, "h264")


def test_run_damaged_video_processes_what_decodes(tmp_path: Path, shared: Path) -> None:
    damaged = shared / "media" / "videos" / "damaged_megamind.avi"
    proc = run_synthetic(
        "run",
        str(damaged),
        "--frames",
        "30",
        "--display",
        "none",
        "--record",
        "d.mp4",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert count_frames(tmp_path / "d.mp4")[0] == 30


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (b"", "not a readable video"),
        (b"garbage " * 100, "not a readable video"),
    ],
)
def test_run_unreadable_source_is_a_clean_error(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    video = tmp_path / "video.mp4"
    if content is not None:
        video.write_bytes(content)
    proc = run_synthetic("run", str(video), "--display", "none", cwd=tmp_path)
    assert reason in assert_clean_error(proc)


def test_sample_clip_is_shipped_and_decodes() -> None:
    source = FileSource(SAMPLE_PATH)
    try:
        assert source.size == (272, 640) and source.fps == 25.0
        frames = [f for _, f in zip(range(3), source, strict=False)]
    finally:
        source.close()
    assert [f.seq for f in frames] == [0, 1, 2]
    assert frames[0].rgb.shape == (272, 640, 3) and frames[0].rgb.dtype == np.uint8
    assert frames[1].pts == pytest.approx(0.04)
    assert (SAMPLE_PATH.parent / "CREDITS.md").is_file()


def test_the_command_line_leaves_the_web_stack_to_serve() -> None:
    """``run`` on a small robot should not carry aiohttp and aiortc (about 40 MB)."""
    script = "import sys, stream.cli; print(sorted({'aiohttp', 'aiortc'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
