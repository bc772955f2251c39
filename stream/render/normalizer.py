"""Per-frame depth to 0-1 with an exponentially smoothed robust range.

Per-frame min/max makes colours pump whenever something enters or leaves the
view; the EMA of robust percentiles moves the range slowly instead, so a static
scene keeps its colours.
"""

from __future__ import annotations

import numpy as np


class EmaNormalizer:
    """Maps depth to [0, 1] with EMA-smoothed low/high percentiles.

    ``ema`` is the weight of the newest frame (1.0 = per-frame range).  The
    first frame initialises the range; while frozen, the range holds still.
    Not thread-safe: its renderer serialises every call.
    """

    def __init__(
        self, low_percentile: float = 2.0, high_percentile: float = 98.0, ema: float = 0.1
    ) -> None:
        self.percentiles = (low_percentile, high_percentile)
        self.ema = ema
        self._frozen = False
        self.low: float | None = None
        self.high: float | None = None
        self._unit: np.ndarray | None = None

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self, frozen: bool) -> None:
        """Hold the current range (True) or follow the frames again (False)."""
        self._frozen = frozen

    def update(self, depth: np.ndarray) -> tuple[float, float]:
        """Fold one frame's robust range into the running range and return it."""
        low, high = (float(v) for v in np.percentile(depth, self.percentiles))
        if self.low is None or self.high is None:
            self.low, self.high = low, high
        elif not self._frozen:
            self.low += self.ema * (low - self.low)
            self.high += self.ema * (high - self.high)
        return self.low, self.high

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """Scale ``depth`` by the current range into a reused float32 buffer, clipped to [0, 1]."""
        if self.low is None or self.high is None:
            raise RuntimeError("update() must see a frame before apply()")
        if self._unit is None or self._unit.shape != depth.shape:
            self._unit = np.empty(depth.shape, np.float32)
        span = max(self.high - self.low, 1e-6)
        np.subtract(depth, self.low, out=self._unit)
        np.multiply(self._unit, 1.0 / span, out=self._unit)
        np.clip(self._unit, 0.0, 1.0, out=self._unit)
        return self._unit
