"""Temporal stability of a depth video, without ground truth.

Two measures, each in units of the depth's 2-98% range so that raw,
colour-range-smoothed and stabilized depth compare on one scale:

- *instability*: on pixels static in the image (as the stabilizer decides,
  blind to global brightness changes), the mean absolute frame-to-frame change;
- *warped error* (OPW-style): the previous depth warped onto the current frame
  by DIS optical flow of the grey frames, compared on pixels whose forward and
  backward flow agree, so a moving camera is measured too.

Three variants of one clip: ``raw`` (each frame in its own range, what a
per-frame normalization shows), ``ema`` (raw through the EMA colour range
alone) and ``stabilized`` (stabilized depth through the same EMA range).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from stream.config import NormalizeConfig, TemporalConfig
from stream.render.normalizer import EmaNormalizer
from stream.stabilizer import Stabilizer, grey_at, static_mask

VARIANTS = ("raw", "ema", "stabilized")
FLOW_AGREEMENT_PX = 1.0


@dataclass(frozen=True)
class Stability:
    """One variant's measures over a clip (means over consecutive frame pairs)."""

    instability: float
    warped_error: float
    pairs: int


def per_frame_unit(depth: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """``depth`` scaled by its own robust range (the per-frame normalization)."""
    lo, hi = np.percentile(depth, percentiles)
    return ((depth - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _flow(dis: cv2.DISOpticalFlow, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return dis.calc(a.astype(np.uint8), b.astype(np.uint8), None)


def flow_back(
    dis: cv2.DISOpticalFlow, grey: np.ndarray, previous_grey: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel of the current frame was in the previous one (``map_x``,
    ``map_y``, for :func:`cv2.remap`), and where forward and backward flow agree."""
    h, w = grey.shape
    back = _flow(dis, grey, previous_grey)
    forth = _flow(dis, previous_grey, grey)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + back[..., 0], ys + back[..., 1]
    forth_there = cv2.remap(forth, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.linalg.norm(back + forth_there, axis=2)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return map_x, map_y, (round_trip < FLOW_AGREEMENT_PX) & inside


class StabilityMeter:
    """Feed consecutive frames with their raw network output; read :meth:`results`."""

    def __init__(self, normalize: NormalizeConfig, temporal: TemporalConfig) -> None:
        self.percentiles = (normalize.low_percentile, normalize.high_percentile)
        self.temporal = temporal
        self._stabilizer = Stabilizer(temporal)
        self._ema = {name: EmaNormalizer(*self.percentiles, normalize.ema) for name in VARIANTS[1:]}
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._previous: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        self._sums = {name: [0.0, 0.0] for name in VARIANTS}
        self._pairs = 0
        self.states: dict[str, int] = {}

    def add(self, rgb: np.ndarray, raw: np.ndarray) -> None:
        steady = self._stabilizer.apply(rgb, raw)
        self.states[steady.state] = self.states.get(steady.state, 0) + 1
        views = {"raw": per_frame_unit(raw, self.percentiles)}
        for name, depth in (("ema", raw), ("stabilized", steady.depth)):
            normalizer = self._ema[name]
            normalizer.update(depth)
            views[name] = normalizer.apply(depth).copy()
        grey = grey_at(rgb, raw.shape)
        if self._previous is not None:
            previous_grey, previous = self._previous
            static = static_mask(grey, previous_grey, self.temporal.static_threshold)
            map_x, map_y, agree = flow_back(self._dis, grey, previous_grey)
            for name in VARIANTS:
                change = np.abs(views[name] - previous[name])
                self._sums[name][0] += float(change[static].mean()) if static.any() else 0.0
                warped = cv2.remap(
                    previous[name], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
                )
                error = np.abs(views[name] - warped)
                self._sums[name][1] += float(error[agree].mean()) if agree.any() else 0.0
            self._pairs += 1
        self._previous = (grey, views)

    def results(self) -> dict[str, Stability]:
        n = max(self._pairs, 1)
        return {
            name: Stability(round(a / n, 4), round(b / n, 4), self._pairs)
            for name, (a, b) in self._sums.items()
        }


def measure(frames: Iterable[tuple[np.ndarray, np.ndarray]], meter: StabilityMeter) -> dict:
    """Run ``(rgb, raw)`` pairs through ``meter``; the results as plain dicts, with the
    stabilizer's state counts."""
    for rgb, raw in frames:
        meter.add(rgb, raw)
    return {
        "variants": {name: asdict(s) for name, s in meter.results().items()},
        "stabilizer": dict(meter.states),
    }


def table(rows: dict[str, dict]) -> str:
    """Clips as rows; instability and warped error of each variant as columns."""
    head = f"{'clip':<32}" + "".join(f" {v + ' inst':>15} {v + ' warp':>15}" for v in VARIANTS)
    lines = [head]
    for clip, result in rows.items():
        cells = result["variants"]
        lines.append(
            f"{clip:<32}"
            + "".join(
                f" {cells[v]['instability']:15.4f} {cells[v]['warped_error']:15.4f}"
                for v in VARIANTS
            )
        )
    return "\n".join(lines)
