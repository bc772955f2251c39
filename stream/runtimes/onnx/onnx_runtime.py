"""ONNX Runtime (CPU execution provider) on the exported fp32 or int8 model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.runtimes.base import import_for
from depthstream.stream.runtimes.onnx.export import INPUT_NAME
from depthstream.stream.runtimes.onnx.file_runtime import OnnxFileRuntime


class OnnxRuntime(OnnxFileRuntime):
    backend = "onnxruntime"

    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        self._ort = import_for("onnxruntime")
        super().__init__(handle, cache_dir, precision, threads)

    def load(self, path: Path) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return self._ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, loaded: Any, batch: np.ndarray) -> np.ndarray:
        return loaded.run(None, {INPUT_NAME: batch})[0]
