"""Image in, relative inverse depth out: network input, runtime, resize back.

The estimator is runtime-agnostic and imports no torch itself, so the ONNX
Runtime and OpenVINO paths run without it once their model files are cached.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from depthstream.stream.config import ModelConfig
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.locate import choose_weights
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS, ModelSpec
from depthstream.stream.runtimes.base import Runtime
from depthstream.stream.runtimes.registry import open_runtime
from depthstream.stream.transform import PREPROCESSING, network_size, to_net_input

log = logging.getLogger("depthstream")
UNTRAINED_STAMP = "UNTRAINED WEIGHTS"


@dataclass(frozen=True, kw_only=True)
class DepthMap:
    """The network's answer for one image, as the pipeline uses it.

    ``raw``: float32 at network resolution, inverse depth (bigger = nearer; relative, or
    1 / metres when ``metric``).  ``size``: the image's (height, width).  ``resized``:
    ``raw`` at that size (``bilinear``: align-corners bilinear, as Depth Anything's
    official code resizes, else bicubic as MiDaS's), made on first use, so a map replaced
    before anyone looks (by the stabilizer) costs no resize.  ``output`` and
    ``output_resized``: what the network itself gave (metres for a metric head), at
    network and at image size, as the official code returns them.
    """

    raw: np.ndarray
    size: tuple[int, int]
    bilinear: bool = False
    metric: bool = False

    @cached_property
    def resized(self) -> np.ndarray:
        return resize_depth(self.raw, self.size, self.bilinear)

    @property
    def output(self) -> np.ndarray:
        return 1.0 / self.raw if self.metric else self.raw

    def output_resized(self) -> np.ndarray:
        return resize_depth(self.output, self.size, self.bilinear)


class DepthEstimator:
    """Runs a registered model on RGB images through one runtime.

    ``stamp`` is what every picture made from its output must carry (set for
    untrained weights, so no picture can hide them).  One lock serialises
    inference: the pipeline and REST calls share the runtime, and two
    inferences at once would only fight over the same cores.
    """

    def __init__(
        self,
        runtime: Runtime,
        input_size: int = 256,
        stamp: str | None = None,
        lock: threading.Lock | None = None,
        spec: ModelSpec = MODELS[DEFAULT_MODEL],
    ) -> None:
        self.runtime = runtime
        self.input_size = input_size
        self.stamp = stamp
        self.spec = spec
        self._prep = PREPROCESSING[spec.preprocessing]
        self._lock = lock or threading.Lock()

    def at_size(self, input_size: int) -> DepthEstimator:
        """This estimator with another network input size: the same runtime and weights,
        the same lock."""
        if input_size == self.input_size:
            return self
        return DepthEstimator(self.runtime, input_size, self.stamp, self._lock, self.spec)

    def warm_up(self, height: int, width: int) -> None:
        """Build (or load) the model for this frame size before the first frame arrives."""
        with self._lock:
            self.runtime.prepare(network_size(height, width, self.input_size, self._prep))

    def raw(self, net_input: np.ndarray) -> np.ndarray:
        """Network output for one CHW float32 input."""
        with self._lock:
            return self.runtime.infer(net_input)

    def __call__(self, rgb: np.ndarray) -> DepthMap:
        out = self.raw(to_net_input(rgb, self.input_size, self._prep))
        metric = self.spec.metric
        return DepthMap(
            raw=1.0 / out if metric else out,
            size=rgb.shape[:2],
            bilinear=self._prep.multiple == 14,
            metric=metric,
        )


def resize_depth(raw: np.ndarray, size: tuple[int, int], bilinear: bool = False) -> np.ndarray:
    """``raw`` at ``(H, W)``: bicubic, or with ``bilinear`` align-corners bilinear.

    The official MiDaS ``run.py`` uses torch's bicubic; OpenCV's uses the same kernel
    (a = -0.75) and pixel-centre mapping and differs only at the borders, within 3e-5 of
    the range on the reference cases.  Depth Anything's ``infer_image`` resizes with
    torch's bilinear, ``align_corners=True``, which OpenCV does not offer: it is done here
    row then column, each output sample between its two nearest inputs.
    """
    if raw.shape == size:
        return raw
    if not bilinear:
        return cv2.resize(raw, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    rows = _corner_aligned(raw, size[0], axis=0)
    return _corner_aligned(rows, size[1], axis=1)


def _corner_aligned(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` to ``n`` samples along ``axis``, first and last samples
    on the first and last inputs."""
    m = a.shape[axis]
    pos = np.linspace(0.0, m - 1, n) if n > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.intp), 0, m - 1)
    hi = np.minimum(lo + 1, m - 1)
    frac = (pos - lo).astype(np.float32)
    shape = (-1, 1) if axis == 0 else (1, -1)
    take_lo, take_hi = np.take(a, lo, axis=axis), np.take(a, hi, axis=axis)
    return take_lo + (take_hi - take_lo) * frac.reshape(shape)


def open_estimator(
    model: ModelConfig, weights: str | None = None, still: bool = False
) -> DepthEstimator:
    """Resolve and check the weights and open the configured model's runtime at its input
    size (for single images with ``still``); untrained weights are warned about here and
    stamped on every picture made from them."""
    spec = model.spec
    choice = choose_weights(weights, model)
    if choice.synthetic:
        log.warning(
            "WARNING: using UNTRAINED synthetic %s weights (from %s); the depth is meaningless",
            spec.title,
            choice.origin,
        )
    handle = WeightsHandle.of_choice(choice, spec)
    handle.check(model.cache_root())
    runtime = open_runtime(
        model.backend, model.precision, handle, model.cache_root(), model.threads
    )
    stamp = f"{UNTRAINED_STAMP} ({spec.name})" if choice.synthetic else None
    return DepthEstimator(runtime, model.size(still), stamp, spec=spec)
