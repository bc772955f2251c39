"""OpenVINO on the CPU, from the exported fp32 or int8 model.

OpenVINO silently runs fp32 models in bf16 on CPUs that have it; ``fp32``
here pins the inference precision to f32 so it stays exact, and ``bf16``
asks for bf16 explicitly.  Compiled blobs are cached by OpenVINO itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.errors import UserError
from stream.model.handle import WeightsHandle
from stream.model.quantize import model_file
from stream.runtimes.base import import_for


class OpenVinoRuntime:
    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        ov = import_for("openvino", "openvino")
        self._core = ov.Core()
        if precision == "bf16" and "BF16" not in self._core.get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES"
        ):
            raise UserError('this CPU has no bf16 support in OpenVINO; use precision = "fp32"')
        self._core.set_property({"CACHE_DIR": str(cache_dir / "openvino")})
        self.label = f"openvino {precision}"
        self.handle = handle
        self.cache_dir = cache_dir
        self.precision = precision
        self.threads = threads
        self._requests: dict[tuple[int, int], object] = {}

    def prepare(self, shape: tuple[int, int]) -> None:
        if shape in self._requests:
            return
        path = model_file(self.handle, shape, self.cache_dir, self.precision)
        compiled = self._core.compile_model(
            str(path),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
        self._requests[shape] = compiled.create_infer_request()

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        shape = (net_input.shape[1], net_input.shape[2])
        self.prepare(shape)
        # The request reuses its output buffer on the next call: copy out.
        return np.array(self._requests[shape].infer({0: net_input[None]})[0][0], copy=True)
