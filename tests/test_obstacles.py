"""Metric calibration, per-sector obstacles, and the zero-shot evaluation.

Real weights are not available here, so the metric pipeline is tested on maps
made from *measured* depth (NYU, KITTI in ../shared): d = (1/depth - t) / s plus
noise, i.e. what an exact MiDaS would output up to its unknown scale and shift.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from depthstream.capture.image import read_image
from depthstream.stream.calibration import Calibrator, describe, fit, fit_factor, sample_points
from depthstream.stream.config import Config, ObstacleConfig, load_config
from depthstream.stream.errors import UserError
from depthstream.stream.evaluate import find_pairs, metric_score, read_depth, score
from depthstream.stream.obstacles import ObstacleMeter, read_sectors
from tests.conftest import assert_clean_error, run_synthetic
from tests.test_web import serve

S, T = 0.004, 0.02


@pytest.fixture(scope="module")
def nyu(shared: Path) -> Path:
    return shared / "media" / "rgbd" / "nyu"


@pytest.fixture(scope="module")
def kitti(shared: Path) -> Path:
    return shared / "media" / "rgbd" / "kitti"


def relative_map(depth_m: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Inverse relative depth as MiDaS would give it (invalid pixels get junk)."""
    rng = np.random.default_rng(seed)
    d = np.where(depth_m > 0, (1.0 / np.maximum(depth_m, 1e-6) - T) / S, rng.uniform(0, 50))
    return (d * (1 + noise * rng.standard_normal(d.shape))).astype(np.float32)


def test_two_exact_points_recover_scale_and_shift() -> None:
    d = np.array([100.0, 20.0])
    result = fit(d, 1.0 / (S * d + T))
    assert result.scale == pytest.approx(S) and result.shift == pytest.approx(T)
    assert result.rms_error_m == pytest.approx(0.0, abs=1e-9)
    assert float(result.metres(50.0)) == pytest.approx(1 / (S * 50 + T))


def test_outliers_are_rejected() -> None:
    d = np.array([10.0, 30.0, 60.0, 90.0, 120.0, 150.0])
    metres = 1.0 / (S * d + T)
    metres[2] *= 3
    result = fit(d, metres)
    assert result.rejected == 1 and result.used == 5
    assert result.scale == pytest.approx(S, rel=1e-6)


@pytest.mark.parametrize(
    ("d", "metres", "message"),
    [
        ([50.0], [2.0], "at least 2"),
        ([50.0, 80.0], [2.0, 2.0], "same distance"),
        ([50.0, 50.0], [1.0, 3.0], "same depth"),
        ([0.0, 80.0], [3.0, 1.0], "invalid depth"),
        ([50.0, 80.0], [1.0, 3.0], "inconsistent"),
        ([50.0, 80.0], [-1.0, 3.0], "positive"),
    ],
)
def test_degenerate_calibrations_are_refused(d, metres, message: str) -> None:
    with pytest.raises(UserError, match=message):
        fit(np.array(d), np.array(metres))


def test_a_metric_models_points_fit_one_factor_and_say_how_far_off_it_was() -> None:
    """A metric model reading 20% short: one point is enough; with five, the one wrong
    distance is rejected; the fit keeps shift 0 and reports the model's own error."""
    own = np.array([1.0, 2.0, 4.0, 6.0, 8.0])  # the model's metres
    measured = 1.25 * own
    one = fit_factor(1.0 / own[:1], measured[:1])
    assert one.model_factor == pytest.approx(1.25) and one.shift == 0.0
    measured[3] *= 2  # a wrong tape reading
    result = fit_factor(1.0 / own, measured)
    assert result.rejected == 1 and result.model_factor == pytest.approx(1.25)
    assert float(result.metres(1.0 / 4.0)) == pytest.approx(5.0)
    assert result.rms_error_m == pytest.approx(0.0, abs=1e-9)
    want = np.sqrt(np.mean((0.25 * own[[0, 1, 2, 4]]) ** 2))
    assert result.model_rms_m == pytest.approx(want)
    assert "times 1.250 (25% short)" in describe(result)
    with pytest.raises(UserError, match="positive"):
        fit_factor(np.array([0.5]), np.array([-1.0]))


def test_a_metric_fit_keeps_points_that_differ_only_by_a_tape_measures_noise() -> None:
    """Three points agree exactly (no spread at all); two read 0.5% and 1% long, which is
    noise, not a wrong point: all five are kept, and the one wrong reading still goes."""
    own = np.array([1.0, 2.0, 4.0, 6.0, 8.0])
    measured = 1.25 * own * np.array([1.0, 1.0, 1.0, 1.005, 1.01])
    result = fit_factor(1.0 / own, measured)
    assert result.rejected == 0 and result.model_factor == pytest.approx(1.25)
    wrong = fit_factor(1.0 / np.append(own, 3.0), np.append(measured, 1.25 * 3.0 * 1.5))
    assert wrong.rejected == 1 and wrong.used == 5
    assert fit(1.0 / own, measured).model_factor is None  # a relative fit has no such factor


def test_points_outside_the_image_are_refused() -> None:
    with pytest.raises(UserError, match="outside the 64x48 image"):
        sample_points(np.ones((48, 64)), [(10, 10), (64, 5)])


@pytest.mark.parametrize("dataset", ["nyu", "kitti"])
def test_calibration_recovers_measured_distances(dataset: str, request) -> None:
    """Fit on 8 measured pixels of a noisy map; check metres at every measured pixel."""
    folder = request.getfixturevalue(dataset)
    truth = read_depth(find_pairs(folder)[0])
    d = relative_map(truth, noise=0.01)
    valid = np.argwhere(truth > 0)
    picks = valid[np.random.default_rng(1).choice(len(valid), 8, replace=False)]
    points = [(float(x), float(y)) for y, x in picks]
    result = fit(sample_points(d, points), np.array([truth[int(y), int(x)] for x, y in points]))
    metres = result.metres(d)[truth > 0]
    error = np.abs(metres - truth[truth > 0]) / truth[truth > 0]
    assert np.median(error) < 0.03 and np.percentile(error, 90) < 0.08


def test_sectors_find_the_nearest_region(kitti: Path) -> None:
    truth = read_depth(find_pairs(kitti)[0])
    d = relative_map(truth)
    d[truth == 0] = 0.0
    options = ObstacleConfig(
        sectors=5, band_top=0.4, band_bottom=1.0, percentile=99.0, warn_metres=8.0
    )
    calibration = fit(np.array([(1 / 5 - T) / S, (1 / 40 - T) / S]), np.array([5.0, 40.0]))
    reading = read_sectors(d, options, calibration)
    band = truth[int(0.4 * truth.shape[0]) :]
    edges = np.linspace(0, truth.shape[1], 6).round().astype(int)
    nearest = [
        np.percentile(band[:, a:b][band[:, a:b] > 0], 1) for a, b in itertools.pairwise(edges)
    ]
    assert reading.nearest.index == int(np.argmin(nearest))
    for sector, want in zip(reading.sectors, nearest, strict=True):
        assert sector.metres == pytest.approx(want, rel=0.1)
        assert sector.warning == (sector.metres < 8.0)
    uncalibrated = read_sectors(d, options, None)
    assert all(s.metres is None and 0 <= s.nearness <= 1 for s in uncalibrated.sectors)
    assert uncalibrated.nearest.index == reading.nearest.index


def test_refit_smooths_scale_and_shift() -> None:
    depth = np.tile(np.linspace(10, 200, 100, dtype=np.float32), (50, 1))
    points = [
        (10.0, 25.0, float(1 / (S * depth[25, 10] + T))),
        (90.0, 25.0, float(1 / (S * depth[25, 90] + T))),
    ]
    calibrator = Calibrator(
        fit(np.array([10.0, 100.0]), np.array([2.0, 1.0])), points, radius=0, refit=True, ema=0.5
    )
    first = calibrator.update(depth)
    assert S < first.scale < calibrator.update(depth).scale * 10
    for _ in range(30):
        last = calibrator.update(depth)
    assert last.scale == pytest.approx(S, rel=1e-3) and last.shift == pytest.approx(T, rel=1e-2)


def test_eval_scores_perfect_and_perturbed_predictions(nyu: Path) -> None:
    truth = read_depth(find_pairs(nyu)[0])
    perfect = score(relative_map(truth), truth)
    assert perfect["abs_rel"] < 1e-5 and perfect["delta1"] == 1.0
    assert perfect["scale"] == pytest.approx(S, rel=1e-4)
    # Four pixels, tiled: disparity off by +-e around truth 1 m and 2 m. Closed form:
    # s = var(1/g) / (var(1/g) + e^2), t = mean * (1 - s); the aligned disparity is then
    # capped below at 1 / (largest measured depth) = 0.5, as MiDaS' evaluation does.
    g = np.tile(np.array([[1.0, 1.0], [2.0, 2.0]], np.float32), (20, 20))
    e = 0.1
    pred = (1 / g + np.tile(np.array([[e, -e], [e, -e]], np.float32), (20, 20))).astype(np.float32)
    s = 0.0625 / (0.0625 + e**2)
    t = 0.75 * (1 - s)
    disparity = np.array([s * (1 + e) + t, s * (1 - e) + t, s * (0.5 + e) + t, s * (0.5 - e) + t])
    aligned = 1 / np.maximum(disparity, 0.5)
    want = np.mean(np.abs(aligned - [1, 1, 2, 2]) / [1, 1, 2, 2])
    assert score(pred, g)["abs_rel"] == pytest.approx(want, rel=1e-5)


def test_both_rgbd_layouts_are_read(nyu: Path, kitti: Path) -> None:
    for folder, scale, most in ((nyu, 1000.0, 10.0), (kitti, 256.0, 100.0)):
        pairs = find_pairs(folder)
        assert len(pairs) == 3 and all(p.rgb.is_file() and p.depth.is_file() for p in pairs)
        truth = read_depth(pairs[0])
        assert pairs[0].depth_scale == scale and 0 < truth.max() < most
    assert 0.1 < (read_depth(find_pairs(kitti)[0]) > 0).mean() < 0.3


def test_eval_command_end_to_end(nyu: Path, tmp_path: Path) -> None:
    proc = run_synthetic("eval", "--rgbd", str(nyu), "--json", "e.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "AbsRel" in proc.stdout and "mean" in proc.stdout and "UNTRAINED" in proc.stdout
    report = json.loads((tmp_path / "e.json").read_text())
    assert len(report["images"]) == 3 and report["untrained_weights"] is True
    assert all(np.isfinite(r["abs_rel"]) and 0 <= r["delta1"] <= 1 for r in report["images"])


def test_a_metric_model_is_scored_in_its_own_metres_without_alignment(nyu: Path) -> None:
    """Metres 1.5x too far: aligned, the error vanishes; unaligned, it is AbsRel 0.5."""
    truth = read_depth(find_pairs(nyu)[0])
    far = np.where(truth > 0, 1.5 * truth, 7.0).astype(np.float32)
    assert score(1.0 / far, truth)["abs_rel"] < 1e-4
    plain = metric_score(far, truth)
    assert plain["metric_abs_rel"] == pytest.approx(0.5, rel=1e-5)
    assert plain["metric_delta1"] == 0.0
    assert metric_score(np.where(truth > 0, truth, 1.0), truth)["metric_abs_rel"] < 1e-6


def test_eval_scores_a_metric_head_aligned_and_in_plain_metres(nyu: Path, tmp_path: Path) -> None:
    model = "depth-anything-v2-small-indoor"
    proc = run_synthetic(
        "eval", "--rgbd", str(nyu), "--model", model, "--input-size", "196", "--json", "e.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "metres AbsRel" in proc.stdout and model in proc.stdout
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["model"] == model and set(report["mean"]) == {
        "abs_rel", "delta1", "metric_abs_rel", "metric_delta1"
    }  # fmt: skip
    assert all(np.isfinite(r["metric_abs_rel"]) for r in report["images"])


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_eval_refuses_a_broken_rgbd_folder(nyu: Path, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "nyu"
    shutil.copytree(nyu, folder)
    victim = folder / "depth" / "sync_depth_00050.png"
    victim.chmod(0o644)
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(b"not a png")
    proc = run_synthetic("eval", "--rgbd", str(folder), cwd=tmp_path)
    assert "sync_depth_00050.png" in assert_clean_error(proc)
    assert not (tmp_path / "eval.json").exists()


@pytest.fixture(scope="module")
def still(nyu: Path) -> Path:
    return find_pairs(nyu)[0].rgb


def test_calibrate_command_fits_and_saves(still: Path, estimator, tmp_path: Path) -> None:
    """Distances made from the network's own output at three pixels: the command must
    recover exactly that line and write it to the config."""
    depth = estimator(read_image(still)).resized
    pixels = [(100, 100), (320, 240), (500, 400)]
    values = sample_points(depth, pixels, 2)
    scale, shift = 0.5 / values.max(), 0.05
    args = [
        f"--point={x},{y},{float(1 / (scale * v + shift))!r}"
        for (x, y), v in zip(pixels, values, strict=True)
    ]
    config = tmp_path / "robot.toml"
    config.write_text("[render]\ncolormap = 'turbo'\n")
    proc = run_synthetic("calibrate", str(still), *args, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "calibrated over 1 frame(s) on 3 point(s)" in proc.stdout
    cfg = load_config(config)
    assert cfg.render.colormap == "turbo"
    assert cfg.calibration.scale == pytest.approx(scale, rel=1e-4)
    assert cfg.calibration.shift == pytest.approx(shift, rel=1e-3)
    assert len(cfg.calibration.points) == 3


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (["10,10,1.0"], "at least 2"),
        (["10,10,1.0", "9000,10,2.0"], "outside"),
        (["10,10,2.0", "300,200,2.0"], "same distance"),
    ],
)
def test_calibrate_failures_write_nothing(still: Path, tmp_path: Path, points, message) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[render]\ncolormap = 'gray'\n")
    before = config.read_text()
    proc = run_synthetic(
        "calibrate",
        str(still),
        *[f"--point={p}" for p in points],
        "--config",
        str(config),
        cwd=tmp_path,
    )
    assert message in assert_clean_error(proc)
    assert config.read_text() == before


def test_python_iterator_yields_readings_and_stops_cleanly() -> None:
    from depthstream import obstacle_readings

    readings = obstacle_readings("sample", weights="synthetic")
    first = [next(readings) for _ in range(3)]
    readings.close()
    assert [len(r.sectors) for r in first] == [5, 5, 5]
    assert first[0].frame < first[-1].frame and not first[0].calibrated
    assert 0 <= first[0].nearest.index < 5
    assert not [t for t in threading.enumerate() if t.name in ("capture", "inference")]


def test_websocket_and_browser_calibration(estimator, tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    cfg = Config()
    meter = ObstacleMeter.from_config(cfg.obstacles, cfg.calibration)

    async def body(client, state):
        async with client.ws_connect("/ws/obstacles") as ws:
            readings = [json.loads((await ws.receive(timeout=60)).data) for _ in range(3)]
        assert all(len(r["sectors"]) == 5 for r in readings)
        assert readings[0]["frame"] < readings[-1]["frame"]
        depth = state.feed().hub.latest.depth.resized
        values = sample_points(depth, [(50, 50), (600, 200)], state.cfg.calibration.radius)
        points = [[50, 50, 1 / (0.01 * values[0] + 0.1)], [600, 200, 1 / (0.01 * values[1] + 0.1)]]
        ok = await client.post("/api/calibration", json={"points": points})
        answer = await ok.json()
        assert ok.status == 200 and answer["saved_to"] == str(config_path)
        bad = await client.post("/api/calibration", json={"points": [[1, 1, 2.0]]})
        assert bad.status == 400 and "at least 2" in (await bad.json())["error"]
        await asyncio.sleep(0.5)
        assert state.feed().hub.latest.obstacles.calibrated

    serve(estimator, body, meter=meter, config_path=config_path)
    assert load_config(config_path).calibration.scale > 0
