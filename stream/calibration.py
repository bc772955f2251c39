"""Metres from a depth model: fit depth_m = 1 / (s * d + t) to points of known distance.

MiDaS (and relative Depth Anything) predict inverse depth up to an unknown scale and
shift, so the fit is linear in inverse-depth space: 1/metres = s * d + t.  With more
than three points it rejects outliers (residual beyond 3 robust standard deviations) and
refits; it refuses degenerate input rather than return a meaningless line.  A metric
model already answers in metres (its d is 1/metres): its points fit one correction
factor (shift 0), and the fit says how far off the model's own metres were.
The ``calibrate`` command and the page's calibration both go through
:func:`calibrate` and :func:`save`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthstream.stream.affine import fit_scale_shift, robust_scale_shift
from depthstream.stream.config import CalibrationConfig, write_section
from depthstream.stream.errors import UserError
from depthstream.stream.stabilizer import Anchor

MIN_SPREAD = 1e-3
LOG_NOISE = 0.01  # a metric fit's least spread in log ratio: points within 3% are never outliers
Point = tuple[float, float, float]  # x, y (pixels of the frame), metres


@dataclass(frozen=True)
class Fit:
    """A fitted line plus how well it explains the points it kept."""

    scale: float
    shift: float
    rms_error_m: float
    used: int
    rejected: int
    model_rms_m: float | None = None  # a metric model's own error at the points

    @property
    def model_factor(self) -> float | None:
        """For a metric model's fit: the measured distances over the model's own (1 / scale);
        None for a relative model's line, whose scale has no such meaning."""
        return None if self.model_rms_m is None else 1.0 / self.scale

    def metres(self, inverse_depth: np.ndarray | float) -> np.ndarray:
        """Metric depth; inf where the line says "beyond infinity" (s*d + t <= 0)."""
        denom = self.scale * np.asarray(inverse_depth, dtype=np.float64) + self.shift
        with np.errstate(divide="ignore"):
            return np.where(denom > 0, 1.0 / np.maximum(denom, 1e-12), np.inf)


def stored_fit(section: CalibrationConfig) -> Fit | None:
    """The conversion saved in ``[calibration]``, or None while uncalibrated (scale 0)."""
    if section.scale <= 0:
        return None
    return Fit(
        scale=section.scale, shift=section.shift, rms_error_m=section.rms_error_m,
        used=len(section.points), rejected=0,
    )  # fmt: skip


def _checked(
    inverse_depth: np.ndarray, metres: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(inverse_depth, dtype=np.float64).ravel()
    m = np.asarray(metres, dtype=np.float64).ravel()
    if d.size != m.size:
        raise ValueError("inverse_depth and metres differ in length")
    if d.size < least:
        raise UserError(f"calibration needs at least {least} point(s), got {d.size}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise UserError("calibration distances must be positive numbers of metres")
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise UserError("a calibration point lies on invalid depth (zero or not finite)")
    return d, m


def fit_factor(inverse_depth: np.ndarray, metres: np.ndarray) -> Fit:
    """A metric model's correction from one point or more: the factor k with measured
    metres = k * the model's, the median of the points' ratios (with more than three,
    ratios beyond 3 robust deviations in log are rejected), stored as scale 1/k, shift 0."""
    d, m = _checked(inverse_depth, metres, 1)
    own = 1.0 / d
    logs = np.log(m / own)
    keep = np.ones(d.size, bool)
    if d.size > 3:
        spread = 1.4826 * np.median(np.abs(logs - np.median(logs)))
        keep = np.abs(logs - np.median(logs)) <= 3 * max(spread, LOG_NOISE)
    factor = float(np.exp(np.median(logs[keep])))
    rms = float(np.sqrt(np.mean((factor * own[keep] - m[keep]) ** 2)))
    model_rms = float(np.sqrt(np.mean((own[keep] - m[keep]) ** 2)))
    return Fit(
        scale=1.0 / factor, shift=0.0, rms_error_m=rms, used=int(keep.sum()),
        rejected=int((~keep).sum()), model_rms_m=model_rms,
    )  # fmt: skip


def fit(inverse_depth: np.ndarray, metres: np.ndarray) -> Fit:
    """Fit s, t from network values ``inverse_depth`` at points ``metres`` away."""
    d, m = _checked(inverse_depth, metres, 2)
    inv = 1.0 / m
    if np.ptp(inv) < MIN_SPREAD * inv.mean():
        raise UserError(
            "calibration points are all at the same distance; give points at different distances"
        )
    if np.ptp(d) < MIN_SPREAD * d.mean():
        raise UserError(
            "the network sees every calibration point at the same depth; "
            "pick points that look nearer and farther"
        )
    if d.size > 3:
        s, t, keep = robust_scale_shift(d, inv)
    else:
        s, t = fit_scale_shift(d, inv)
        keep = np.ones(d.size, bool)
    if not (np.isfinite(s) and np.isfinite(t)):
        raise UserError("calibration values are out of range; check the points")
    if s <= 0:
        raise UserError(
            "calibration is inconsistent: points that look nearer were given larger "
            "distances; check the points and their distances"
        )
    line = Fit(scale=s, shift=t, rms_error_m=0.0, used=int(keep.sum()), rejected=int((~keep).sum()))
    error = line.metres(d[keep]) - m[keep]
    return dataclasses.replace(line, rms_error_m=float(np.sqrt(np.mean(error**2))))


def sample_points(
    depth: np.ndarray, points: Sequence[tuple[float, float]], radius: int = 0
) -> np.ndarray:
    """Median of ``depth`` in a (2r+1)^2 window at each (x, y); refuses points outside it."""
    h, w = depth.shape
    values = []
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"calibration point ({x:g}, {y:g}) is outside the {w}x{h} image")
        xi, yi = int(x), int(y)
        window = depth[max(yi - radius, 0) : yi + radius + 1, max(xi - radius, 0) : xi + radius + 1]
        values.append(float(np.median(window)))
    return np.array(values)


def calibrate(
    depth_maps: Sequence[np.ndarray], points: Sequence[Point], radius: int, metric: bool = False
) -> Fit:
    """Fit on each point's median value over ``depth_maps`` (frame-size depth, one or more);
    ``metric``: the maps are a metric model's, which only a factor corrects."""
    if not depth_maps:
        raise UserError("calibration needs at least one depth map")
    xy = [(x, y) for x, y, _ in points]
    values = np.median([sample_points(depth, xy, radius) for depth in depth_maps], axis=0)
    return (fit_factor if metric else fit)(values, np.array([m for _, _, m in points]))


def describe(result: Fit) -> str:
    """The fit in words: for a metric model, how far off its own metres were."""
    used = f"{result.used} point(s) ({result.rejected} rejected as outliers)"
    factor = result.model_factor
    if factor is None:
        return (
            f"{used}: scale {result.scale:.6g}, shift {result.shift:.6g}, "
            f"rms error {result.rms_error_m:.3f} m"
        )
    return (
        f"{used}: the model's distances times {factor:.3f} "
        f"({abs(factor - 1):.0%} {'short' if factor > 1 else 'long'}); "
        f"rms error {result.model_rms_m:.3f} m before, {result.rms_error_m:.3f} m after"
    )


def save(
    path: Path,
    section: CalibrationConfig,
    points: Sequence[Point],
    radius: int,
    result: Fit,
    anchor: Anchor | None = None,
    camera: str | None = None,
) -> CalibrationConfig:
    """Write ``result`` with its points into ``[calibration]`` of ``path`` (with ``camera``:
    into that ``[[cameras]]`` entry), the rest of the file as it was, and the frame it was
    fitted on (``anchor``) beside it; returns the new section.  A file that cannot be
    written is a UserError."""
    stem = f"{path.stem}.{camera}" if camera else path.stem
    anchor_file = path.with_name(f"{stem}.anchor.npz")
    new = dataclasses.replace(
        section,
        points=[list(p) for p in points],
        radius=radius,
        scale=result.scale,
        shift=result.shift,
        rms_error_m=round(result.rms_error_m, 4),
        anchor=anchor_file.name if anchor is not None else "",
    )
    try:
        if anchor is not None:
            anchor.save(anchor_file)
        write_section(path, "calibration", new, camera)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return new


class Calibrator:
    """Holds the current s, t; optionally refits every frame on fixed reference points,
    smoothing s and t with an EMA so distances do not jump.  Safe from any thread: the
    output thread updates it while the page may replace the calibration."""

    def __init__(
        self,
        current: Fit | None,
        points: Sequence[Point],
        radius: int = 2,
        refit: bool = False,
        ema: float = 0.2,
    ) -> None:
        self._current = current
        self._points = list(points)
        self.radius = radius
        self._refit = refit
        self.ema = ema
        self._lock = threading.Lock()

    @property
    def current(self) -> Fit | None:
        return self._current

    def use(self, result: Fit, points: Sequence[Point]) -> None:
        """Replace the calibration (and the reference points a refit uses)."""
        with self._lock:
            self._current = result
            self._points = list(points)

    def update(self, depth: np.ndarray, metric: bool = False) -> Fit | None:
        """Fold in this frame when refitting; a frame where the fit fails keeps the last one."""
        with self._lock:
            if not self._refit or len(self._points) < (1 if metric else 2):
                return self._current
            try:
                new = calibrate([depth], self._points, self.radius, metric)
            except UserError:
                return self._current
            if self._current is None:
                self._current = new
            else:
                a = self.ema
                self._current = dataclasses.replace(
                    new,
                    scale=(1 - a) * self._current.scale + a * new.scale,
                    shift=(1 - a) * self._current.shift + a * new.shift,
                )
            return self._current
