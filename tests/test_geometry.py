"""Intrinsics, point clouds, laser scans and PLY files, checked against the pinhole model."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from depthstream.capture.options import CameraOptions
from depthstream.stream.errors import UserError
from depthstream.stream.geometry import Intrinsics, intrinsics_for, laser_scan, point_cloud
from tests.conftest import assert_clean_error, run_synthetic
from tests.media import first_frame, read_ply

K = Intrinsics(500.0, 500.0, 319.5, 239.5)


def test_intrinsics_from_focal_lengths_or_a_field_of_view() -> None:
    exact = intrinsics_for(CameraOptions(fx=600, fy=610, cx=330, cy=250), 640, 480)
    assert exact == Intrinsics(600, 610, 330, 250, approximate=False)
    centred = intrinsics_for(CameraOptions(fx=600, fy=600), 640, 480)
    assert (centred.cx, centred.cy) == (319.5, 239.5)
    wide = intrinsics_for(CameraOptions(hfov_deg=90), 640, 480)
    assert wide.approximate and wide.fx == pytest.approx(320) and wide.fy == wide.fx
    with pytest.raises(UserError, match="intrinsics"):
        intrinsics_for(CameraOptions(), 640, 480)


def test_points_reproject_onto_their_pixels_with_their_colours() -> None:
    rng = np.random.default_rng(1)
    metres = rng.uniform(0.5, 8.0, (480, 640)).astype(np.float32)
    metres[0:40, 0:40] = np.nan
    metres[100:140, 100:140] = 20.0  # beyond max_range
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cloud = point_cloud(metres, rgb, K, stride=4, max_range=10.0)
    x, y, z = cloud.xyz.T
    u = np.round(K.fx * x / z + K.cx).astype(int)
    v = np.round(K.fy * y / z + K.cy).astype(int)
    assert np.all(u % 4 == 0) and np.all(v % 4 == 0)
    assert np.allclose(metres[v, u], z, rtol=1e-6)
    assert np.array_equal(rgb[v, u], cloud.rgb)
    assert len(z) == (120 * 160) - 10 * 10 - 10 * 10
    assert cloud.xyz.dtype == np.float32 and z.max() <= 10.0


def test_a_wall_and_a_box_in_the_scan() -> None:
    metres = np.full((480, 640), 2.0, np.float32)
    metres[200:280, 40:120] = 1.0  # a box on the left of the picture
    scan = laser_scan(metres, K, band=(0.45, 0.55))
    assert scan.angle_max == pytest.approx(math.atan(319.5 / 500))
    assert scan.angle_min == pytest.approx(-math.atan(319.5 / 500))
    angles = scan.angle_min + np.arange(640) * scan.angle_increment
    assert np.all(np.isfinite(scan.ranges))  # no gaps where there is depth
    ahead = scan.ranges[np.argmin(np.abs(angles))]
    assert ahead == pytest.approx(2.0, rel=1e-3)
    # The wall's range grows as 1/cos of the angle; the box is on the left (positive angles).
    wall = (angles < 0) & (angles > -0.5)
    assert np.allclose(scan.ranges[wall], 2.0 / np.cos(angles[wall]), rtol=0.01)
    box = (angles > math.atan((319.5 - 110) / 500)) & (angles < math.atan((319.5 - 50) / 500))
    assert np.allclose(scan.ranges[box] * np.cos(angles[box]), 1.0, rtol=0.01)


def test_ranges_beyond_the_limit_are_inf_and_missing_ones_nan() -> None:
    metres = np.full((100, 200), 50.0, np.float32)
    metres[:, :20] = np.nan
    scan = laser_scan(metres, Intrinsics(100, 100, 99.5, 49.5), range_max=10.0)
    assert np.all(np.isinf(scan.ranges[:-25]))  # the leftmost columns come last
    assert np.all(np.isnan(scan.ranges[-10:]))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(arrays(np.float32, (24, 32), elements=st.floats(0.25, 9.0, width=32)), st.floats(20, 400))
def test_every_bin_of_a_scan_over_valid_depth_has_a_range(metres, focal) -> None:
    # range_max above the farthest ray (9 m at the widest angle): every bin has a finite range.
    k = Intrinsics(focal, focal, 15.5, 11.5)
    scan = laser_scan(metres, k, band=(0.0, 1.0), range_max=20.0)
    assert np.all(np.isfinite(scan.ranges)) and np.all(scan.ranges >= 0.25 - 1e-6)


def test_image_writes_a_coloured_point_cloud_when_calibrated(tmp_path: Path) -> None:
    picture = tmp_path / "frame.png"
    cv2.imwrite(str(picture), cv2.cvtColor(first_frame(640, 272), cv2.COLOR_RGB2BGR))
    config = tmp_path / "config.toml"
    config.write_text(
        "[calibration]\nscale = 0.02\nshift = 0.1\npoints = []\n[camera]\nhfov_deg = 70.0\n"
    )
    proc = run_synthetic(
        "image", str(picture), "--config", str(config), "--ply", "cloud.ply", "--depth", "d.npy",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    points = read_ply(tmp_path / "cloud.ply")
    assert not (tmp_path / "cloud.ply.part").exists()
    metres = 1 / (0.02 * np.load(tmp_path / "d.npy").astype(np.float64) + 0.1)
    f = 320 / math.tan(math.radians(35))
    u = np.round(f * points["x"] / points["z"] + 319.5).astype(int)
    v = np.round(f * points["y"] / points["z"] + 135.5).astype(int)
    assert len(points) > 1000 and np.all(u % 4 == 0) and np.all(v % 4 == 0)
    np.testing.assert_allclose(points["z"], metres[v, u], rtol=1e-5)
    rgb = cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB)[v, u]
    assert np.array_equal(np.stack([points["red"], points["green"], points["blue"]], 1), rgb)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[camera]\nhfov_deg = 70.0\n", "calibrate first"),
        ("[calibration]\nscale = 0.02\n", "intrinsics"),
    ],
)
def test_a_point_cloud_without_calibration_or_lens_is_a_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    picture = tmp_path / "frame.png"
    cv2.imwrite(str(picture), first_frame(64, 32))
    (tmp_path / "config.toml").write_text(text)
    proc = run_synthetic("image", str(picture), "--config", "config.toml", "--ply", cwd=tmp_path)
    assert message in assert_clean_error(proc)
