"""EMA normalization keeps colours steady; colour maps put near = bright."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthstream.stream.estimator import UNTRAINED_STAMP, DepthMap
from depthstream.stream.render.colormap import OPENCV_CODES, Colorizer
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from tests.flicker import flicker_index


def scene(t: int, rng: np.random.Generator) -> np.ndarray:
    """A static ramp with sensor noise and a small bright object that comes and goes."""
    depth = np.tile(np.linspace(1.0, 10.0, 64, dtype=np.float32), (48, 1))
    depth += rng.normal(0, 0.05, depth.shape).astype(np.float32)
    if t % 2:
        depth[10:20, 10:20] = 40.0
    return depth


def normalized_sequence(ema: float) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    norm = EmaNormalizer(2, 98, ema)
    out = []
    for t in range(30):
        d = scene(t, rng)
        norm.update(d)
        out.append(norm.apply(d).copy())
    return out


def test_first_frame_initialises_then_ema_moves_slowly() -> None:
    norm = EmaNormalizer(0, 100, ema=0.25)
    assert norm.update(np.array([[0.0, 10.0]])) == (0.0, 10.0)
    assert norm.update(np.array([[4.0, 30.0]])) == pytest.approx((1.0, 15.0))
    norm.freeze(True)
    assert norm.update(np.array([[100.0, 200.0]])) == pytest.approx((1.0, 15.0))


def test_apply_scales_clips_and_reuses_its_buffer() -> None:
    norm = EmaNormalizer(0, 100, ema=1.0)
    depth = np.array([[0.0, 5.0, 10.0, 20.0]], np.float32)
    norm.update(depth[:, :3])
    first = norm.apply(depth)
    np.testing.assert_allclose(first, [[0.0, 0.5, 1.0, 1.0]])
    assert norm.apply(depth) is first


def test_percentiles_ignore_outliers() -> None:
    depth = np.linspace(0, 1, 10_000, dtype=np.float32).reshape(100, 100)
    depth[0, 0] = 1e6
    low, high = EmaNormalizer(2, 98).update(depth)
    assert low == pytest.approx(0.02, abs=1e-3) and high == pytest.approx(0.98, abs=1e-3)


def test_ema_flickers_less_than_per_frame_range() -> None:
    """The flicker measure tells the two strategies apart on a static scene."""
    per_frame = flicker_index(normalized_sequence(1.0))
    smoothed = flicker_index(normalized_sequence(0.1))
    assert smoothed < 0.5 * per_frame


def test_flicker_of_identical_frames_is_zero_and_needs_two_frames() -> None:
    frame = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    assert flicker_index([frame, frame, frame]) == 0.0
    with pytest.raises(ValueError):
        flicker_index([frame])


@pytest.mark.parametrize("name", ["inferno", "magma", "viridis", "plasma", "gray"])
def test_near_is_brighter_than_far(name: str) -> None:
    unit = np.array([[0.0, 1.0]], np.float32)
    bgr = Colorizer(name)(unit)
    assert bgr.shape == (1, 2, 3) and bgr.dtype == np.uint8
    luma = bgr.astype(float) @ [0.114, 0.587, 0.299]
    assert luma[0, 1] > luma[0, 0] + 100


@pytest.mark.parametrize("name", [n for n, code in OPENCV_CODES.items() if code is not None])
def test_table_lookup_gives_opencvs_colours(name: str) -> None:
    """The fast table path must paint exactly what ``cv2.applyColorMap`` paints."""
    unit = np.random.default_rng(1).random((37, 53), dtype=np.float32)
    unit[0, :3] = [0.0, 1.0, 0.5 / 255]
    expected = cv2.applyColorMap(np.rint(unit * 255).astype(np.uint8), OPENCV_CODES[name])
    assert np.array_equal(Colorizer(name)(unit), expected)


@pytest.mark.parametrize("name", ["turbo", "jet"])
def test_rainbow_maps_put_near_at_the_warm_end(name: str) -> None:
    b, _, r = Colorizer(name)(np.array([[1.0]], np.float32))[0, 0].astype(int)
    assert r > b + 50


def test_unknown_colormap_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown colormap"):
        Colorizer("rainbow-unicorn")


def test_untrained_stamp_is_drawn_in_red() -> None:
    depth = np.tile(np.linspace(0, 1, 320, dtype=np.float32), (240, 1))
    rgb = np.zeros((240, 320, 3), np.uint8)
    plain = (
        DepthRenderer(EmaNormalizer(), "gray")
        .render(rgb, DepthMap(raw=depth, size=depth.shape))
        .image.copy()
    )
    stamped = (
        DepthRenderer(EmaNormalizer(), "gray", stamp=UNTRAINED_STAMP)
        .render(rgb, DepthMap(raw=depth, size=depth.shape))
        .image
    )
    changed = np.any(plain != stamped, axis=2)
    assert changed[:40].sum() > 200 and not changed[80:].any()
    b, g, r = (stamped[..., i].astype(int) for i in range(3))
    assert ((r > 200) & (g < 60) & (b < 60)).sum() > 50


def test_side_by_side_puts_the_original_left() -> None:
    rgb = np.full((10, 12, 3), (255, 0, 0), np.uint8)
    depth = np.ones((10, 12), np.float32)
    view = (
        DepthRenderer(EmaNormalizer(), "inferno", "side-by-side")
        .render(rgb, DepthMap(raw=depth, size=depth.shape))
        .image
    )
    assert view.shape == (10, 24, 3)
    assert (view[:, :12] == (0, 0, 255)).all()
