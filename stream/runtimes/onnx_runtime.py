"""ONNX Runtime (CPU execution provider) on the exported fp32 or int8 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.model.export import INPUT_NAME
from stream.model.handle import WeightsHandle
from stream.model.quantize import model_file
from stream.runtimes.base import import_for


class OnnxRuntime:
    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        self._ort = import_for("onnxruntime", "onnxruntime")
        self.label = f"onnxruntime {precision}"
        self.handle = handle
        self.cache_dir = cache_dir
        self.precision = precision
        self.threads = threads
        self._sessions: dict[tuple[int, int], object] = {}

    def prepare(self, shape: tuple[int, int]) -> None:
        if shape in self._sessions:
            return
        path = model_file(self.handle, shape, self.cache_dir, self.precision)
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._sessions[shape] = self._ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        shape = (net_input.shape[1], net_input.shape[2])
        self.prepare(shape)
        return self._sessions[shape].run(None, {INPUT_NAME: net_input[None]})[0][0]
