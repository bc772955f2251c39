"""Which backend runs which precision, their tolerances, and opening one by name.

Kept free of heavy imports: the config validates against :data:`PRECISIONS`,
and each runtime module is imported only when chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stream.runtimes.base import FP32, Runtime, Tolerance, thread_count

if TYPE_CHECKING:
    from stream.model.handle import WeightsHandle

PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "bf16-decoder"),
    "onnxruntime": ("fp32", "int8", "int8-decoder"),
    "openvino": ("fp32", "bf16", "bf16-decoder", "int8", "int8-decoder"),
}

# Floors measured on the synthetic weights (see Tolerance): bf16 gave r 0.83-0.89
# and int8 0.57-0.75 on real frames, because random weights amplify rounding in
# the encoder.  bf16-decoder leaves the encoder in fp32 and gave r 0.9998, and
# int8-decoder (int8 convolutions inside the decoder, see stream.model.quantize)
# 0.997, so both are held to the bar for a default.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": FP32,
    "bf16": Tolerance(min_pearson=0.75),
    "bf16-decoder": Tolerance(min_pearson=0.99),
    "int8": Tolerance(min_pearson=0.5),
    "int8-decoder": Tolerance(min_pearson=0.99),
}


def uses_bf16(precision: str) -> bool:
    """Whether ``precision`` needs bf16 from the CPU (``bf16``, ``bf16-decoder``): the one
    check every runtime and the bench use before refusing or skipping it."""
    return precision.startswith("bf16")


def bf16_supported(backend: str) -> bool:
    """Whether ``backend`` can run bf16 on this CPU."""
    if backend == "torch":
        from stream.runtimes.torchscript import bf16_supported as supported
    elif backend == "openvino":
        from stream.runtimes.openvino_runtime import bf16_supported as supported
    else:
        return False
    return supported()


def open_runtime(
    backend: str, precision: str, handle: WeightsHandle, cache_dir: Path, threads: int = 0
) -> Runtime:
    """The runtime for ``backend``/``precision`` (validated by the config already)."""
    n = thread_count(threads)
    if backend == "torch":
        from stream.runtimes.thread_bound import ThreadBoundRuntime
        from stream.runtimes.torchscript import TorchScriptRuntime

        return ThreadBoundRuntime(lambda: TorchScriptRuntime(handle, cache_dir, precision, n))
    if backend == "onnxruntime":
        from stream.runtimes.onnx_runtime import OnnxRuntime

        return OnnxRuntime(handle, cache_dir, precision, n)
    from stream.runtimes.openvino_runtime import OpenVinoRuntime

    return OpenVinoRuntime(handle, cache_dir, precision, n)
