"""Frames for the H.264/VP8 encoders are converted by OpenCV, as swscale would."""

from __future__ import annotations

import av
import cv2
import numpy as np

from capture.decode import spread_frames
from capture.sample import SAMPLE_PATH
from stream.colormap import Colorizer
from stream.yuv420 import yuv420p_frame


def swscale(bgr: np.ndarray) -> np.ndarray:
    """PyAV's own conversion: the reference the encoders used before."""
    return av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p").to_ndarray()


def images() -> dict[str, np.ndarray]:
    rgb = spread_frames(SAMPLE_PATH, 2)[1]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    return {
        "camera frame": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        "colour map": Colorizer("turbo")(grey).copy(),
        # Every 2x2 block differs: point-sampled chroma would be up to 137 levels off.
        "noise": noise,
    }


def test_every_plane_is_within_one_level_of_swscale() -> None:
    for name, bgr in images().items():
        got = yuv420p_frame(bgr)
        assert (got.format.name, got.width, got.height) == ("yuv420p", bgr.shape[1], bgr.shape[0])
        diff = np.abs(got.to_ndarray().astype(int) - swscale(bgr))
        assert diff.max() <= 1, name


def test_an_odd_row_and_column_are_cropped() -> None:
    bgr = images()["noise"][:63, :95]
    got = yuv420p_frame(bgr)
    assert (got.width, got.height) == (94, 62)
    assert np.abs(got.to_ndarray().astype(int) - swscale(bgr[:62, :94])).max() <= 1
