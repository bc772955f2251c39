"""The Python API: ``from depthstream import open_depth``, as a robot program or a notebook uses it,
on the bundled real clip."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from depthstream import DepthFrame, UserError, open_depth
from tests.conftest import ROOT

STAGES = ("capture", "inference", "output")


def test_frames_carry_the_picture_depth_metres_and_obstacles(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n")
    with open_depth("sample", config=config, weights="synthetic") as frames:
        got = [next(frames) for _ in range(3)]
    assert all(isinstance(f, DepthFrame) for f in got)
    assert got[0].seq < got[1].seq < got[2].seq
    first = got[0]
    assert first.bgr.shape == (272, 640, 3) and first.bgr.dtype == np.uint8
    assert first.inverse_depth.shape == (272, 640) and first.inverse_depth.dtype == np.float32
    assert first.metres is not None and first.metres.dtype == np.float32
    # 1 / (scale * d + shift); where that is not positive, the line says "beyond infinity".
    denom = 0.02 * first.inverse_depth.astype(np.float64) + 0.1
    want = np.where(denom > 0, 1.0 / np.maximum(denom, 1e-12), np.inf)
    np.testing.assert_allclose(first.metres, want, rtol=1e-6)
    assert np.isfinite(first.metres).mean() > 0.5
    assert first.obstacles is not None and first.obstacles.calibrated
    assert len(first.obstacles.sectors) == 5 and first.obstacles.frame == first.seq
    assert first.capture_time > 1e9  # wall clock, for a robot's log
    assert not [t for t in threading.enumerate() if t.name in STAGES]


def test_calibrated_frames_with_intrinsics_carry_a_point_cloud_and_a_scan(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n"
        "[camera]\nfx = 400.0\nfy = 400.0\n[geometry]\nstride = 8\n"
    )
    with open_depth("sample", config=config, weights="synthetic") as frames:
        frame = next(frames)
    assert frame.points is not None and frame.scan is not None
    x, y, z = frame.points.xyz.T
    u = np.round(400 * x / z + 319.5).astype(int)
    v = np.round(400 * y / z + 135.5).astype(int)
    np.testing.assert_allclose(frame.metres[v, u], z, rtol=1e-5)
    assert np.array_equal(frame.points.rgb, frame.bgr[v, u, ::-1])
    assert len(frame.scan.ranges) == 640 and frame.scan.angle_min < 0 < frame.scan.angle_max
    # Straight ahead the scan holds the nearest range of the band in a centre column.
    angles = frame.scan.angle_min + np.arange(640) * frame.scan.angle_increment
    ahead = frame.scan.ranges[np.argmin(np.abs(angles))]
    band = frame.metres[int(0.45 * 272) : int(0.55 * 272)]

    def nearest(u: int) -> float:
        r = band[:, u] * np.sqrt(1 + ((u - 319.5) / 400) ** 2)
        r = r[np.isfinite(r) & (r >= 0.1)]
        return np.nan if r.size == 0 else (r.min() if r.min() <= 10 else np.inf)

    assert any(np.isclose(ahead, nearest(u), rtol=1e-5, equal_nan=True) for u in (319, 320))


def test_uncalibrated_frames_have_no_metres_and_the_stream_ends_with_its_source(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    stream = open_depth(str(ROOT / "capture" / "data" / "sample.mp4"), config, "synthetic")
    try:
        first = next(stream)
        assert first.metres is None and not first.obstacles.calibrated
        assert first.points is None and first.scan is None
        # The colours of the picture are the clip's own (BGR), not a heat map.
        assert first.bgr.std() > 10
    finally:
        stream.close()
    assert not [t for t in threading.enumerate() if t.name in STAGES]
    assert list(stream) == []  # closed: iteration ends at once


def test_importing_depthstream_leaves_the_api_unloaded_until_asked() -> None:
    script = (
        "import sys, depthstream; before = 'depthstream.stream.api' in sys.modules; "
        "from depthstream import open_depth; print(before, 'depthstream.stream.api' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False True"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("calibrated", [False, True], ids=["uncalibrated", "calibrated"])
def test_the_readme_example_runs_as_written(tmp_path: Path, calibrated: bool) -> None:
    """README's Python block, run from a folder with its config.toml (any sector warns) on
    the sample instead of a webcam: it says how near the obstacle is, never ``None``."""
    config = "[obstacles]\nwarn_relative = 0.0\nwarn_metres = 1000.0\n"
    if calibrated:
        config += "[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n"
    (tmp_path / "config.toml").write_text(config)
    example = readme_example()
    code = example.replace('open_depth("0")', 'open_depth("sample")')
    assert code != example
    env = {**os.environ, "DEPTHSTREAM_WEIGHTS": "synthetic"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) > 10 and all(line.startswith("stop: obstacle ahead") for line in lines)
    assert "None" not in proc.stdout
    unit = " m" if calibrated else "uncalibrated"
    assert all(line.endswith(unit) for line in lines), lines[:3]


def test_a_missing_config_is_one_clear_exception(tmp_path: Path) -> None:
    """Without config.toml the defaults apply; a named file that is not there raises the
    package's UserError naming it, before any source opens."""
    with pytest.raises(UserError, match=r"config: cannot read .*nowhere\.toml"):
        open_depth("sample", config=tmp_path / "nowhere.toml", weights="synthetic")


def test_the_api_opens_the_same_outputs_as_the_command(tmp_path: Path) -> None:
    """``open_depth(outputs=...)``: the assembly opens them as it does for ``run``: here an
    MCAP recording of the frames seen, and a bad path refused before the source opens."""
    from mcap.reader import make_reader

    from depthstream import Outputs

    target = tmp_path / "api.mcap"
    with open_depth("sample", weights="synthetic", outputs=Outputs(mcap=str(target))) as frames:
        seen = [next(frames) for _ in range(4)]
    assert len(seen) == 4
    with target.open("rb") as f:
        images = [m for _, c, m in make_reader(f).iter_messages() if c.topic.endswith("compressed")]
    assert len(images) >= 4
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="afile is not a folder"):
        open_depth("rtsp://127.0.0.1:1/x", outputs=Outputs(record=str(tmp_path / "afile/v.mp4")))
