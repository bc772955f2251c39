"""What ONNX Runtime and OpenVINO share: one exported (or int8) file per input shape."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.runtimes.onnx.quantize import model_file


class OnnxFileRuntime(ABC):
    """Loads the cached ONNX file for each shape on first use; subclasses say how to run it."""

    backend = ""

    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        self.label = f"{self.backend} {precision}"
        self.handle = handle
        self.cache_dir = cache_dir
        self.precision = precision
        self.threads = threads
        self._loaded: dict[tuple[int, int], Any] = {}

    @abstractmethod
    def load(self, path: Path) -> Any:
        """Turn the model file into something :meth:`run` can call."""

    @abstractmethod
    def run(self, loaded: Any, batch: np.ndarray) -> np.ndarray:
        """The ``(1, H, W)`` output for a ``(1, 3, H, W)`` batch."""

    def prepare(self, shape: tuple[int, int]) -> None:
        if shape not in self._loaded:
            path = model_file(self.handle, shape, self.cache_dir, self.precision)
            self._loaded[shape] = self.load(path)

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        shape = (net_input.shape[1], net_input.shape[2])
        self.prepare(shape)
        return self.run(self._loaded[shape], net_input[None])[0]
