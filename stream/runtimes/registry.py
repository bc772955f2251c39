"""Opening a runtime by backend and precision, and which of them this CPU can run.

Kept free of heavy imports: each runtime module is imported only when chosen.  The
backends and the precisions each offers are :data:`stream.config.BACKENDS` (a setting's
vocabulary); this registry holds how to open each of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from depthstream.stream.config import BACKENDS
from depthstream.stream.runtimes.base import Runtime, thread_count

if TYPE_CHECKING:
    from depthstream.stream.model.handle import WeightsHandle

Opener = Callable[["WeightsHandle", Path, str, int], Runtime]


def _torch(handle: WeightsHandle, cache_dir: Path, precision: str, threads: int) -> Runtime:
    from depthstream.stream.runtimes.torchscript.runtime import TorchScriptRuntime
    from depthstream.stream.runtimes.torchscript.thread_bound import ThreadBoundRuntime

    return ThreadBoundRuntime(lambda: TorchScriptRuntime(handle, cache_dir, precision, threads))


def _onnxruntime(handle: WeightsHandle, cache_dir: Path, precision: str, threads: int) -> Runtime:
    from depthstream.stream.runtimes.onnx.onnx_runtime import OnnxRuntime

    return OnnxRuntime(handle, cache_dir, precision, threads)


def _openvino(handle: WeightsHandle, cache_dir: Path, precision: str, threads: int) -> Runtime:
    from depthstream.stream.runtimes.onnx.openvino_runtime import OpenVinoRuntime

    return OpenVinoRuntime(handle, cache_dir, precision, threads)


# How each backend of BACKENDS opens, and where those that can run bf16 say if this CPU can.
OPENERS: dict[str, Opener] = {"torch": _torch, "onnxruntime": _onnxruntime, "openvino": _openvino}
BF16_PROBES = {
    "torch": "depthstream.stream.runtimes.torchscript.runtime",
    "openvino": "depthstream.stream.runtimes.onnx.openvino_runtime",
}


def bf16_supported(backend: str) -> bool:
    """Whether ``backend`` can run bf16 on this CPU."""
    module = BF16_PROBES.get(backend)
    return module is not None and importlib.import_module(module).bf16_supported()


def open_runtime(
    backend: str, precision: str, handle: WeightsHandle, cache_dir: Path, threads: int = 0
) -> Runtime:
    """The runtime for ``backend``/``precision`` (one of :data:`BACKENDS`' pairs, as the
    settings have checked)."""
    if precision not in BACKENDS[backend].precisions:
        raise ValueError(f"{backend} offers no {precision}")
    return OPENERS[backend](handle, cache_dir, precision, thread_count(threads))
