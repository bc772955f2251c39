"""The TorchScript runtime: traced, frozen, channels-last, with oneDNN graph fusion.

Fusion is torch's own (``torch.jit.enable_onednn_fusion``): the profiling
executor rewrites the frozen graph into fused oneDNN partitions after a few
profiling runs, which :meth:`TorchScriptRuntime.prepare` does up front so the
first real frame is already fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from depthstream.stream.errors import UserError
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.registry import MODELS
from depthstream.stream.runtimes.base import uses_bf16
from depthstream.stream.runtimes.torchscript.trace import example_input, load_or_trace

PROFILING_RUNS = 3


def bf16_supported() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@contextmanager
def _without_fusion() -> Iterator[None]:
    """oneDNN graph fusion off for one call (the switch is process-wide: put back after)."""
    before = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(False)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(before)


class TorchScriptRuntime:
    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        if uses_bf16(precision) and not bf16_supported():
            raise UserError(f'this CPU has no bf16 support in torch for {precision}; use "fp32"')
        torch.set_num_threads(threads)
        torch.jit.enable_onednn_fusion(True)
        self.label = f"torch {precision}"
        self.precision = precision
        self.cache_dir = cache_dir
        self.handle = handle
        self._fusion = MODELS[handle.model].fusion
        self._modules: dict[tuple[int, int], torch.jit.ScriptModule] = {}

    def _fuser(self) -> AbstractContextManager:
        """oneDNN fusion as enabled above, or none for a model whose graph it breaks."""
        return nullcontext() if self._fusion else _without_fusion()

    def prepare(self, shape: tuple[int, int]) -> None:
        if shape in self._modules:
            return
        module = load_or_trace(self.handle, shape, self.cache_dir, self.precision)
        with torch.inference_mode(), warnings.catch_warnings(), self._fuser():
            warnings.simplefilter("ignore", FutureWarning)
            for _ in range(PROFILING_RUNS):
                module(example_input(shape))
        self._modules[shape] = module

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        shape = (net_input.shape[1], net_input.shape[2])
        self.prepare(shape)
        x = torch.from_numpy(net_input)[None].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._fuser():
            return self._modules[shape](x)[0].float().numpy()
