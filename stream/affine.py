"""The one least-squares scale and shift in the project.

MiDaS answers in relative inverse depth, known only up to a scale and a
shift, so anything compared with it (measured distances, ground truth,
another runtime's output) is first aligned by this fit.
"""

from __future__ import annotations

import numpy as np


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(s, t)`` minimising ``||s * x + t - y||^2`` over all elements, in float64."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    a = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(s), float(t)
