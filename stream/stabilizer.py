"""Steady depth values over time: the current frame's depth, less its flicker.

MiDaS answers each frame in its own affine space (inverse depth up to a scale and
a shift), and its values flicker between frames of the same scene.  Each frame:

1. Optical flow (DIS on the grey frames at network resolution, each normalized so
   exposure changes move nothing) says whether the camera moved: its textured pixels
   moved, and following the flow explains the image better than standing still.
   Pixels whose image does not match the (motion-compensated) previous frame are
   *changed*: something moved or came into view.
2. A moving camera's frame passes through: its own depth under the last scale and
   shift, nothing blended, so no edge or block of the past can be carried along.
3. While the camera is still, the last scale and shift are kept unless the model's
   affine jumped: a new pair is used only when it explains nearly all unchanged
   pixels far better and no real part of the scene stayed exactly as it was (a wall
   coming nearer while the floor stays is a real change and shows at once).  Each
   unchanged pixel whose depth is within ``depth_tolerance`` of its previous value
   is then blended with it (``pixel_ema``); every other pixel is this frame's own.

A scene cut (almost nothing matches) starts afresh.  An anchor (the calibration's
frame) is preferred as the target of the fit whenever it matches the current view,
so a calibration keeps giving metres.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthstream.stream.affine import robust_scale_shift
from depthstream.stream.config import TemporalConfig
from depthstream.stream.errors import UserError

SMOOTHED, PASSTHROUGH, RESET = "smoothed", "passthrough", "reset"
STATES = (SMOOTHED, PASSTHROUGH, RESET)
MAX_FIT_POINTS = 2048
# A fitted scale and shift counts as the model's own jump only when this share of the
# unchanged pixels lands within FIT_TOLERANCE of the target's range and the mean error
# falls JUMP_GAIN times below the kept pair's.
AFFINE_INLIERS = 0.9
FIT_TOLERANCE = 0.05
JUMP_GAIN = 5.0
GROW_CHANGED = np.ones((5, 5), np.uint8)
# The camera moved when its textured pixels moved by STILL_PX (network pixels, median)
# and following the flow matches the image FLOW_GAIN times better than standing still.
STILL_PX = 0.2
FLOW_GAIN = 1.15


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

    ``state``: smoothed (the camera was still: unchanged pixels blended with the
    previous frame), passthrough (the camera moved: the frame's own depth under the
    kept scale and shift) or reset (first frame or a scene cut: no reference).
    ``static``: the fraction of pixels whose image matches the previous frame's once
    motion is compensated.  ``scale``/``shift``: the pair applied to the raw depth.
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


def robust_range(values: np.ndarray) -> float:
    """The 2-98% spread of ``values`` (at least a tiny positive number)."""
    step = max(values.size // MAX_FIT_POINTS, 1)
    lo, hi = np.percentile(values.ravel()[::step], [2, 98])
    return max(float(hi - lo), 1e-6)


def normalized(grey: np.ndarray) -> np.ndarray:
    """``grey`` with its mean and spread fixed (uint8), so a global gain or offset from
    auto-exposure changes neither the flow nor the comparison."""
    std = max(float(grey.std()), 1e-3)
    return np.clip((grey - float(grey.mean())) * (40.0 / std) + 128.0, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Motion:
    """Where each current pixel was in a reference frame, which pixels match there, and
    whether the camera moved (when it did not, the flow is noise and is not applied)."""

    map_x: np.ndarray
    map_y: np.ndarray
    same: np.ndarray
    moving: bool

    def warp(self, image: np.ndarray) -> np.ndarray:
        """``image`` (of the reference frame) carried onto the current frame."""
        if not self.moving:
            return image
        return cv2.remap(
            image, self.map_x, self.map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REPLICATE
        )


def camera_moves(flow: np.ndarray, now: np.ndarray, then: np.ndarray, warped: np.ndarray) -> bool:
    """Whether the camera moved: on the textured quarter of the pixels (flat regions show
    no flow even when they move) the median flow is :data:`STILL_PX` or more, *and*
    following it explains the image :data:`FLOW_GAIN` times better than standing still.
    Exposure changes and compression make coherent but useless flow; people walking
    through a still view move far fewer than half of the textured pixels."""
    grey = now.astype(np.float32)
    strength = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    textured = strength >= np.percentile(strength, 75)
    if float(np.median(cv2.magnitude(flow[..., 0], flow[..., 1])[textured])) < STILL_PX:
        return False
    standing = float(np.abs(grey - then)[textured].mean())
    following = float(np.abs(grey - warped)[textured].mean())
    return standing >= FLOW_GAIN * max(following, 1e-3)


def track(
    dis: cv2.DISOpticalFlow, grey: np.ndarray, reference: np.ndarray, threshold: float
) -> Motion:
    """Flow from ``grey`` back to ``reference`` (both normalized): a pixel matches when the
    (motion-compensated) reference's brightness is within ``threshold`` of the range of
    its own, and so do its neighbours (an edge that slid is not a match)."""
    now, then = normalized(grey), normalized(reference)
    flow = dis.calc(now, then, None)
    h, w = grey.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    followed = Motion(map_x, map_y, np.ones(grey.shape, bool), True)
    warped = followed.warp(then.astype(np.float32))
    if camera_moves(flow, now, then, warped):
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        motion = Motion(map_x, map_y, inside, True)
    else:
        motion = Motion(xs, ys, np.ones(grey.shape, bool), False)
        warped = then.astype(np.float32)
    changed = np.abs(now.astype(np.float32) - warped) > threshold * 255.0
    changed = cv2.dilate(changed.view(np.uint8), GROW_CHANGED).astype(bool)
    return Motion(motion.map_x, motion.map_y, motion.same & ~changed, motion.moving)


def _sample(mask: np.ndarray) -> np.ndarray:
    """Flat indices of at most :data:`MAX_FIT_POINTS` pixels of ``mask``, evenly spread."""
    index = np.flatnonzero(mask)
    step = max(index.size // MAX_FIT_POINTS, 1)
    return index[::step]


def _part_unchanged(unchanged: np.ndarray, span: float) -> bool:
    """Whether the pixels the kept pair still explains tightly are a real part of the
    scene (a tenth of the fit's pixels, spread over a tenth of the depth range), not the
    narrow band of values a scale-and-shift jump leaves in place."""
    if unchanged.size < MAX_FIT_POINTS // 10:
        return False
    return robust_range(unchanged) >= 0.1 * span


def fit_affine(
    raw: np.ndarray, target: np.ndarray, same: np.ndarray, current: tuple[float, float]
) -> tuple[float, float] | None:
    """A new scale and shift taking ``raw`` onto ``target`` on the ``same`` pixels, when the
    model's affine jumped: the ``current`` pair leaves more than a tenth of them beyond
    :data:`FIT_TOLERANCE` of the target's range, and a new pair brings
    :data:`AFFINE_INLIERS` of them within it *and* cuts the mean error
    :data:`JUMP_GAIN` times.  A real change of part of the scene (a wall coming nearer
    while the floor stays) leaves part of the scene exactly as it was and is only partly
    explained by any one pair: None, so it shows.  None too for a flat or inverted fit."""
    index = _sample(same)
    x, y = raw.ravel()[index], target.ravel()[index]
    if x.size < 16 or np.ptp(x) <= 1e-6 * max(abs(float(x.mean())), 1.0):
        return None
    span = robust_range(y)
    limit = FIT_TOLERANCE * span
    kept = np.abs(current[0] * x + current[1] - y)
    if np.mean(kept <= limit) >= AFFINE_INLIERS or _part_unchanged(y[kept <= limit / 5], span):
        return None
    scale, shift, _ = robust_scale_shift(x, y, rounds=2)
    if not np.isfinite(scale) or scale <= 0:
        return None
    error = np.abs(scale * x + shift - y)
    jumped = np.mean(error <= limit) >= AFFINE_INLIERS
    return (scale, shift) if jumped and JUMP_GAIN * error.mean() <= kept.mean() else None


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
        self._correction = (1.0, 0.0)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
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

    def _anchor_fit(self, grey: np.ndarray, raw: np.ndarray) -> tuple[float, float] | None:
        """The fit onto the anchor's depth, when the anchor is of this size and in view."""
        anchor = self._anchor
        if anchor is None or anchor.grey.shape != raw.shape:
            return None
        motion = track(self._dis, grey, anchor.grey, self.options.static_threshold)
        if motion.same.mean() < self.options.min_static:
            return None
        return fit_affine(raw, motion.warp(anchor.depth), motion.same, self._correction)

    def _keep(self, grey: np.ndarray, depth: np.ndarray, correction: tuple[float, float]) -> None:
        self._grey, self._depth, self._correction = grey, depth.astype(np.float32), correction

    def apply(self, rgb: np.ndarray, raw: np.ndarray) -> Stabilized:
        """Stabilize one frame's raw network output (``rgb`` is the frame it came from)."""
        o = self.options
        grey = grey_at(rgb, raw.shape)
        with self._lock:
            fitted = self._anchor_fit(grey, raw)
            if self._grey is None or self._grey.shape != raw.shape:
                scale, shift = fitted or (1.0, 0.0)
                self._keep(grey, scale * raw + shift, (scale, shift))
                return Stabilized(self._depth.copy(), RESET, 0.0, scale, shift)
            motion = track(self._dis, grey, self._grey, o.static_threshold)
            static = float(motion.same.mean())
            if static < o.cut_static and fitted is None:
                self._keep(grey, raw, (1.0, 0.0))
                return Stabilized(self._depth.copy(), RESET, static)
            if motion.moving:
                scale, shift = fitted or self._correction
                self._keep(grey, scale * raw + shift, (scale, shift))
                return Stabilized(self._depth.copy(), PASSTHROUGH, static, scale, shift)
            previous = self._depth
            if fitted is None and static >= o.min_static:
                fitted = fit_affine(raw, previous, motion.same, self._correction)
            scale, shift = fitted or self._correction
            corrected = scale * raw + shift
            close = np.abs(corrected - previous) <= o.depth_tolerance * robust_range(corrected)
            smooth = motion.same & close
            self._keep(
                grey,
                np.where(smooth, previous + o.pixel_ema * (corrected - previous), corrected),
                (scale, shift),
            )
            return Stabilized(self._depth.copy(), SMOOTHED, static, scale, shift)
