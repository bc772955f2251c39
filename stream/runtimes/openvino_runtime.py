"""OpenVINO on the CPU, from the exported fp32 or int8 model.

OpenVINO silently runs fp32 models in bf16 on CPUs that have it; ``fp32``
here pins the inference precision to f32 so it stays exact, and ``bf16``
asks for bf16 explicitly.  Compiled blobs are cached by OpenVINO itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import UserError
from stream.model.handle import WeightsHandle
from stream.runtimes.base import import_for
from stream.runtimes.onnx_file import OnnxFileRuntime
from stream.runtimes.registry import uses_bf16


def bf16_supported() -> bool:
    ov = import_for("openvino", "openvino")
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRuntime(OnnxFileRuntime):
    backend = "openvino"

    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        ov = import_for("openvino", "openvino")
        if uses_bf16(precision) and not bf16_supported():
            raise UserError('this CPU has no bf16 support in OpenVINO; use precision = "fp32"')
        self._core = ov.Core()
        self._core.set_property({"CACHE_DIR": str(cache_dir / "openvino")})
        super().__init__(handle, cache_dir, precision, threads)

    def load(self, path: Path) -> Any:
        hint = "bf16" if self.precision == "bf16" else "f32"
        compiled = self._core.compile_model(
            str(path),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": hint,
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
        return compiled.create_infer_request()

    def run(self, loaded: Any, batch: np.ndarray) -> np.ndarray:
        # The request reuses its output buffer on the next call: copy out.
        return np.array(loaded.infer({0: batch})[0], copy=True)
