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
from depthstream.stream.runtimes.base import Runtime
from depthstream.stream.runtimes.registry import open_runtime
from depthstream.stream.transform import network_size, to_net_input

log = logging.getLogger("depthstream")
UNTRAINED_STAMP = "UNTRAINED WEIGHTS"


@dataclass(frozen=True, kw_only=True)
class DepthMap:
    """The network's answer for one image.

    ``raw``: float32 at network resolution (bigger = nearer, relative units).
    ``size``: the image's (height, width).  ``resized``: ``raw`` resized (bicubic)
    to it, made on first use, so a map replaced before anyone looks (by the
    stabilizer) costs no resize.
    """

    raw: np.ndarray
    size: tuple[int, int]

    @cached_property
    def resized(self) -> np.ndarray:
        if self.raw.shape == self.size:
            return self.raw
        return resize_depth(self.raw, self.size)


class DepthEstimator:
    """Runs MiDaS small on RGB images through one runtime.

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
    ) -> None:
        self.runtime = runtime
        self.input_size = input_size
        self.stamp = stamp
        self._lock = lock or threading.Lock()

    def at_size(self, input_size: int) -> DepthEstimator:
        """This estimator with another network input size: the same runtime and weights,
        the same lock."""
        if input_size == self.input_size:
            return self
        return DepthEstimator(self.runtime, input_size, self.stamp, self._lock)

    def warm_up(self, height: int, width: int) -> None:
        """Build (or load) the model for this frame size before the first frame arrives."""
        with self._lock:
            self.runtime.prepare(network_size(height, width, self.input_size))

    def raw(self, net_input: np.ndarray) -> np.ndarray:
        """Network output for one CHW float32 input."""
        with self._lock:
            return self.runtime.infer(net_input)

    def __call__(self, rgb: np.ndarray) -> DepthMap:
        raw = self.raw(to_net_input(rgb, self.input_size))
        return DepthMap(raw=raw, size=rgb.shape[:2])


def resize_depth(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize to ``(H, W)``.

    The official ``run.py`` uses torch's bicubic; OpenCV's uses the same kernel
    (a = -0.75) and pixel-centre mapping and differs only at the borders, within
    3e-5 of the range on the reference cases.
    """
    return cv2.resize(raw, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def open_estimator(model: ModelConfig, weights: str | None = None) -> DepthEstimator:
    """Resolve and check the weights and open the configured runtime; untrained weights are
    warned about here and stamped on every picture made from them."""
    choice = choose_weights(weights, model)
    if choice.synthetic:
        log.warning(
            "WARNING: using UNTRAINED synthetic weights (from %s); the depth is meaningless",
            choice.origin,
        )
    handle = WeightsHandle.of_choice(choice)
    handle.check(model.cache_root())
    runtime = open_runtime(
        model.backend, model.precision, handle, model.cache_root(), model.threads
    )
    return DepthEstimator(runtime, model.input_size, UNTRAINED_STAMP if choice.synthetic else None)
