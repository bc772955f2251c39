"""The record every source produces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One decoded picture.

    ``rgb``: HxWx3 uint8.  ``seq``: 0-based count of frames the source produced.
    ``pts``: the source's own timestamp in seconds (``None`` if it has none).
    ``captured_at``: ``time.monotonic()`` when the frame left the decoder, the
    reference for frame-age measurements.
    """

    rgb: np.ndarray
    seq: int
    pts: float | None
    captured_at: float
