"""The one least-squares scale and shift in the project.

MiDaS answers in relative inverse depth, known only up to a scale and a
shift, so anything compared with it (measured distances, ground truth,
another runtime's output, the previous frame) is first aligned by this fit.
"""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(s, t)`` minimising ``||s * x + t - y||^2`` over all elements, in float64 (the
    closed form on centred values; ``s`` is 0 when ``x`` has no spread)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    mx, my = x.mean(), y.mean()
    dx = x - mx
    var = float(dx @ dx)
    s = float(dx @ (y - my)) / var if var > 0 else 0.0
    return s, float(my - s * mx)


def robust_scale_shift(
    x: np.ndarray, y: np.ndarray, k: float = 3.0, rounds: int = 3
) -> tuple[float, float, np.ndarray]:
    """The fit, refitted without the points whose residual exceeds ``k`` robust standard
    deviations (median absolute deviation) until the kept set settles or ``rounds`` refits
    are done; returns ``(s, t, kept)``.

    A refit is skipped when it would keep fewer than two points or no spread in ``x``.
    The deviation has a floor relative to ``y``, so that when most points are fitted
    exactly the others still count as outliers.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    s, t = fit_scale_shift(x, y)
    keep = np.ones(x.size, bool)
    floor = 1e-6 * max(float(np.ptp(y)), float(np.abs(y).max(initial=0.0)), 1e-12)
    for _ in range(rounds if x.size > 2 else 0):
        residual = y - (s * x + t)
        inside = residual[keep]
        sigma = max(MAD_TO_SIGMA * _middle(np.abs(inside - _middle(inside))), floor)
        inliers = np.abs(residual) <= k * sigma
        if np.array_equal(inliers, keep) or inliers.sum() < 2 or np.ptp(x[inliers]) <= 0:
            break
        keep = inliers
        s, t = fit_scale_shift(x[keep], y[keep])
    return s, t, keep


def _middle(values: np.ndarray) -> float:
    """The median's upper middle element (cheaper than :func:`numpy.median`; the same for
    an odd count)."""
    k = values.size // 2
    return float(np.partition(values, k)[k])
