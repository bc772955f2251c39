"""Opening a runtime by backend and precision, and which of them this CPU can run.

Kept free of heavy imports: each runtime module is imported only when chosen.
Which backend offers which precision is a setting's vocabulary, so it lives
in :data:`stream.config.PRECISIONS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from depthstream.stream.runtimes.base import Runtime, thread_count

if TYPE_CHECKING:
    from depthstream.stream.model.handle import WeightsHandle


def bf16_supported(backend: str) -> bool:
    """Whether ``backend`` can run bf16 on this CPU."""
    if backend == "torch":
        from depthstream.stream.runtimes.torchscript.runtime import bf16_supported as supported
    elif backend == "openvino":
        from depthstream.stream.runtimes.onnx.openvino_runtime import bf16_supported as supported
    else:
        return False
    return supported()


def open_runtime(
    backend: str, precision: str, handle: WeightsHandle, cache_dir: Path, threads: int = 0
) -> Runtime:
    """The runtime for ``backend``/``precision`` (validated by the config already)."""
    n = thread_count(threads)
    if backend == "torch":
        from depthstream.stream.runtimes.torchscript.runtime import TorchScriptRuntime
        from depthstream.stream.runtimes.torchscript.thread_bound import ThreadBoundRuntime

        return ThreadBoundRuntime(lambda: TorchScriptRuntime(handle, cache_dir, precision, n))
    if backend == "onnxruntime":
        from depthstream.stream.runtimes.onnx.onnx_runtime import OnnxRuntime

        return OnnxRuntime(handle, cache_dir, precision, n)
    from depthstream.stream.runtimes.onnx.openvino_runtime import OpenVinoRuntime

    return OpenVinoRuntime(handle, cache_dir, precision, n)
