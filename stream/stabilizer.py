"""Steady depth values over time: every frame brought into one scale and shift, then
smoothed per pixel where nothing moved.

MiDaS answers each frame in its own affine space (inverse depth up to a scale
and a shift), so values jump between frames of a static scene.  Each frame is
aligned to the previous stabilized one by a robust scale/shift fit on the
pixels that are static in the *image* (brightness compared after removing a
global gain and offset, so auto-exposure moves nothing), then static pixels
are smoothed with an EMA.  Pixels that changed take the new frame's value
at once, so real motion is never smoothed toward the past; with too few static
pixels the frame passes through unaligned and the reference restarts there.
An anchor (the calibration's frame) is preferred as the reference whenever
enough of it is still in view, so a calibration keeps giving metres.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stream.affine import robust_scale_shift
from stream.config import TemporalConfig
from stream.errors import UserError

ALIGNED, PASSTHROUGH, RESET = "aligned", "passthrough", "reset"
STATES = (ALIGNED, PASSTHROUGH, RESET)
MAX_FIT_POINTS = 2048
GROW_CHANGED = np.ones((5, 5), np.uint8)
MOVED_PX = 1.0


@dataclass(frozen=True)
class Anchor:
    """A reference frame: its grey image and stabilized depth, both at network resolution."""

    grey: np.ndarray
    depth: np.ndarray

    def save(self, path: Path) -> None:
        """Write as ``.npz`` through a temporary file, so no half-written anchor is left."""
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, grey=self.grey, depth=self.depth)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Anchor:
        try:
            with np.load(path) as data:
                grey, depth = data["grey"], data["depth"]
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"calibration anchor {path}: cannot be read ({exc})") from None
        if grey.shape != depth.shape or grey.ndim != 2:
            raise UserError(f"calibration anchor {path}: not an anchor file")
        return cls(grey.astype(np.float32), depth.astype(np.float32))


@dataclass(frozen=True)
class Stabilized:
    """One frame's stabilized depth (network resolution) and how it was obtained.

    ``state``: aligned (fitted to the reference), passthrough (too few static
    pixels: unaligned, the reference restarts) or reset (first frame or a scene
    cut: no reference).  ``static``: the fraction of pixels that were static.
    """

    depth: np.ndarray
    state: str
    static: float
    scale: float = 1.0
    shift: float = 0.0


def grey_at(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The frame's grey image at ``shape`` (network resolution), float32."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def _sample(mask: np.ndarray) -> np.ndarray:
    """Flat indices of at most :data:`MAX_FIT_POINTS` pixels of ``mask``, evenly spread."""
    index = np.flatnonzero(mask)
    step = max(index.size // MAX_FIT_POINTS, 1)
    return index[::step]


def static_mask(grey: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose brightness did not change beyond ``threshold`` of the image's range once
    a global gain and offset are removed, shrunk away from every changed pixel."""
    every = np.arange(0, grey.size, max(grey.size // MAX_FIT_POINTS, 1))
    gain, offset, _ = robust_scale_shift(reference.ravel()[every], grey.ravel()[every], rounds=2)
    lo, hi = np.percentile(reference.ravel()[every], [2, 98])
    changed = np.abs(grey - (gain * reference + offset)) > threshold * max(hi - lo, 1.0)
    changed = cv2.dilate(changed.view(np.uint8), GROW_CHANGED)
    return changed == 0


def camera_moved(grey: np.ndarray, reference: np.ndarray) -> bool:
    """Whether the whole image shifted by a pixel or more (phase correlation): a panning
    camera moves every pixel, though flat regions look unchanged pixel by pixel."""
    (dx, dy), response = cv2.phaseCorrelate(reference, grey)
    return response > 0.05 and dx * dx + dy * dy >= MOVED_PX**2


class Stabilizer:
    """Stabilizes the raw depth of consecutive frames (one pipeline's, in order).

    :meth:`apply` runs on the output thread; :meth:`anchor` and :meth:`use_anchor`
    may be called from any other (the page's calibration).
    """

    def __init__(self, options: TemporalConfig, anchor: Anchor | None = None) -> None:
        self.options = options
        self._anchor = anchor
        self._grey: np.ndarray | None = None
        self._depth: np.ndarray | None = None
        self._lock = threading.Lock()

    def anchor(self) -> Anchor | None:
        """The current reference, to anchor a calibration made on the current frame."""
        with self._lock:
            if self._grey is None or self._depth is None:
                return None
            return Anchor(self._grey.copy(), self._depth.copy())

    def use_anchor(self, anchor: Anchor | None) -> None:
        """Align to ``anchor`` whenever enough of it is in view (None: to the last frame only)."""
        with self._lock:
            self._anchor = anchor

    def _still(self, grey: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Static pixels against ``reference``, their fraction, and whether a fit may use them
        (enough of them, and the camera did not move)."""
        mask = static_mask(grey, reference, self.options.static_threshold)
        fraction = float(mask.mean())
        usable = fraction >= self.options.min_static and not camera_moved(grey, reference)
        return mask, fraction, usable

    def apply(self, rgb: np.ndarray, raw: np.ndarray) -> Stabilized:
        """Stabilize one frame's raw network output (``rgb`` is the frame it came from)."""
        o = self.options
        grey = grey_at(rgb, raw.shape)
        with self._lock:
            target = None
            static, fraction, follows = None, 0.0, False
            if self._grey is not None and self._grey.shape == raw.shape:
                static, fraction, follows = self._still(grey, self._grey)
            anchor = self._anchor
            if anchor is not None and anchor.grey.shape == raw.shape:
                on_anchor, _, usable = self._still(grey, anchor.grey)
                target = (anchor.depth, on_anchor) if usable else None
            if target is None and follows:
                target = (self._depth, static)
            fitted = self._fit(raw, *target) if target is not None else None
            if fitted is None:
                state = RESET if static is None or fraction < o.cut_static else PASSTHROUGH
                self._grey, self._depth = grey, raw.astype(np.float32, copy=True)
                return Stabilized(self._depth.copy(), state, fraction)
            scale, shift = fitted
            aligned = (scale * raw + shift).astype(np.float32)
            if follows:
                smoothed = self._depth + o.pixel_ema * (aligned - self._depth)
                aligned = np.where(static, smoothed, aligned).astype(np.float32)
            self._grey, self._depth = grey, aligned
            return Stabilized(aligned.copy(), ALIGNED, fraction, scale, shift)

    @staticmethod
    def _fit(raw: np.ndarray, target: np.ndarray, static: np.ndarray) -> tuple[float, float] | None:
        """Scale and shift taking ``raw`` onto ``target`` on static pixels; None when the
        fit is meaningless (no spread, or a negative scale)."""
        index = _sample(static)
        x, y = raw.ravel()[index], target.ravel()[index]
        if np.ptp(x) <= 1e-6 * max(abs(float(x.mean())), 1.0):
            return None
        scale, shift, _ = robust_scale_shift(x, y, rounds=2)
        if not np.isfinite(scale) or scale <= 0:
            return None
        return scale, shift
