"""Rendered BGR frames as yuv420p video frames, the format H.264 and VP8 encode.

PyAV converts a ``bgr24`` frame with swscale while holding the GIL: 3.7 ms
per 960x540 frame here, during which the inference thread cannot start or
finish a model call.  OpenCV releases the GIL and took 0.9 ms for the same
conversion.  The chroma planes are 2x2 averages (as swscale makes them), not
OpenCV's I420 point samples, which fringe the sharp edges of a colour map.
The result matches swscale within one level on every plane.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

# BT.601 limited range (the coefficients swscale and OpenCV's I420 use), rows
# for Cb and Cr over (B, G, R, 1).
_LIMITED = 224 / 255
_CHROMA = np.array(
    [
        [0.5 * _LIMITED, -0.331264 * _LIMITED, -0.168736 * _LIMITED, 128.0],
        [-0.081312 * _LIMITED, -0.418688 * _LIMITED, 0.5 * _LIMITED, 128.0],
    ],
    dtype=np.float32,
)


def bgr_to_i420(bgr: np.ndarray) -> np.ndarray:
    """Planar Y, Cb, Cr of an even-sized BGR image, stacked as OpenCV's I420 layout."""
    h, w = bgr.shape[:2]
    planes = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    half = cv2.resize(bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    cbcr = cv2.transform(half, _CHROMA)
    flat = planes.reshape(-1)
    luma, quarter = h * w, h * w // 4
    flat[luma : luma + quarter] = cbcr[..., 0].ravel()
    flat[luma + quarter :] = cbcr[..., 1].ravel()
    return planes


def yuv420p_frame(bgr: np.ndarray) -> av.VideoFrame:
    """``bgr`` as a yuv420p frame; an odd last row or column is cropped (4:2:0 needs
    even sizes)."""
    h, w = (bgr.shape[0] // 2) * 2, (bgr.shape[1] // 2) * 2
    return av.VideoFrame.from_ndarray(bgr_to_i420(bgr[:h, :w]), format="yuv420p")
