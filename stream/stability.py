"""Temporal stability of a depth video and its fidelity to each frame, without ground truth.

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

Low change alone is won by a filter that holds old values, so the stabilized
depth's *fidelity* to each frame's own depth is measured beside it:

- *r*: Pearson correlation of the stabilized and the per-frame depth of each frame
  (1 when the stabilizer only rescaled the frame);
- *imprint*: the edge strength (summed gradient magnitude) the stabilized depth has
  beyond the per-frame depth brought into its scale and shift, as a share of the
  latter's: 0 for the frame's own depth, large when lines, blocks or bands that are
  not in the frame's depth (a mask's edges, posterized steps) are burned in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from depthstream.stream.affine import robust_scale_shift
from depthstream.stream.config import NormalizeConfig, TemporalConfig
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.stabilizer import MAX_FIT_POINTS, SMOOTHED, Stabilizer, grey_at

VARIANTS = ("raw", "ema", "stabilized")
FLOW_AGREEMENT_PX = 1.0
GROW_CHANGED = np.ones((5, 5), np.uint8)


@dataclass(frozen=True)
class Stability:
    """One variant's measures over a clip (means over consecutive frame pairs)."""

    instability: float
    warped_error: float
    pairs: int


@dataclass(frozen=True)
class Fidelity:
    """The stabilized depth against each frame's own: median and 5th percentile of the
    per-frame Pearson r, and the median and 95th percentile of the imprint."""

    r_median: float
    r_p5: float
    imprint_median: float
    imprint_p95: float


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays (1.0 when either is constant and they are equal)."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    da, db = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((da * da).sum() * (db * db).sum()))
    if denom == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float((da * db).sum() / denom)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32)
    return cv2.magnitude(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1))


def edge_imprint(stabilized: np.ndarray, raw: np.ndarray) -> float:
    """Edge strength of ``stabilized`` beyond that of ``raw`` in its scale and shift, as a
    share of the latter (0 when the stabilizer only rescaled the frame)."""
    a = np.vstack([raw.ravel(), np.ones(raw.size)]).T.astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, stabilized.ravel().astype(np.float64), rcond=None)
    own = gradient_magnitude(coef[0] * raw + coef[1])
    beyond = np.maximum(gradient_magnitude(stabilized) - own, 0.0)
    return float(beyond.sum() / max(float(own.sum()), 1e-12))


def static_mask(grey: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose brightness did not change beyond ``threshold`` of the image's range once
    a global gain and offset are removed, shrunk away from every changed pixel."""
    every = np.arange(0, grey.size, max(grey.size // MAX_FIT_POINTS, 1))
    gain, offset, _ = robust_scale_shift(reference.ravel()[every], grey.ravel()[every], rounds=2)
    lo, hi = np.percentile(reference.ravel()[every], [2, 98])
    changed = np.abs(grey - (gain * reference + offset)) > threshold * max(hi - lo, 1.0)
    changed = cv2.dilate(changed.view(np.uint8), GROW_CHANGED)
    return changed == 0


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
        self._r: list[float] = []
        self._imprint: list[float] = []
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
        self._r.append(pearson(steady.depth, raw))
        self._imprint.append(edge_imprint(steady.depth, raw))
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

    def fidelity(self) -> Fidelity:
        r, imprint = np.array(self._r or [1.0]), np.array(self._imprint or [0.0])
        return Fidelity(
            r_median=round(float(np.median(r)), 4),
            r_p5=round(float(np.percentile(r, 5)), 4),
            imprint_median=round(float(np.median(imprint)), 4),
            imprint_p95=round(float(np.percentile(imprint, 95)), 4),
        )


def measure(frames: Iterable[tuple[np.ndarray, np.ndarray]], meter: StabilityMeter) -> dict:
    """Run ``(rgb, raw)`` pairs through ``meter``; the results as plain dicts, with the
    stabilized depth's fidelity and the stabilizer's state counts."""
    for rgb, raw in frames:
        meter.add(rgb, raw)
    return {
        "variants": {name: asdict(s) for name, s in meter.results().items()},
        "fidelity": asdict(meter.fidelity()),
        "stabilizer": dict(meter.states),
    }


def columns(clips: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Clips as rows: instability and warped error of each variant, the stabilized depth's
    fidelity (r median / 5th percentile, imprint median / 95th percentile) and the share
    of frames smoothed (the rest passed through: the camera moved, or a cut)."""
    head = ["clip"] + [f"{v} inst / warp" for v in VARIANTS]
    head += ["r med / p5", "imprint med / p95", "smoothed"]
    rows = []
    for clip, result in clips.items():
        cells, fidelity, states = result["variants"], result["fidelity"], result["stabilizer"]
        smoothed = states.get(SMOOTHED, 0) / max(sum(states.values()), 1)
        rows.append(
            [clip]
            + [f"{cells[v]['instability']:.4f} / {cells[v]['warped_error']:.4f}" for v in VARIANTS]
            + [
                f"{fidelity['r_median']:.3f} / {fidelity['r_p5']:.3f}",
                f"{fidelity['imprint_median']:.3f} / {fidelity['imprint_p95']:.3f}",
                f"{smoothed:.0%}",
            ]
        )
    return head, rows


def table(clips: dict[str, dict]) -> str:
    """:func:`columns` as aligned plain text."""
    head, rows = columns(clips)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    return "\n".join(lines)
