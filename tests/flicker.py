"""A number for flicker: how much a normalized map changes between consecutive frames.

On a static scene every change is flicker, so the mean absolute frame-to-frame
difference of the 0-1 maps compares normalization strategies directly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def flicker_index(unit_maps: Iterable[np.ndarray]) -> float:
    """Mean over consecutive pairs of mean |map[t] - map[t-1]| (0 = perfectly steady)."""
    previous: np.ndarray | None = None
    total, pairs = 0.0, 0
    for current in unit_maps:
        current = np.asarray(current, dtype=np.float32)
        if previous is not None:
            total += float(np.mean(np.abs(current - previous)))
            pairs += 1
        previous = current.copy()
    if pairs == 0:
        raise ValueError("flicker needs at least two frames")
    return total / pairs
