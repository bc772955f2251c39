"""The plain ``nn.Module`` in fp32: the reference every benchmarked path is compared with, and
what torch hub users run.  Also what sets the scale of the bench's speed figures: the
network's arithmetic per frame, and this machine's fp32 matrix-multiply throughput."""

from __future__ import annotations

import time

import numpy as np

from depthstream.stream.model.handle import WeightsHandle

# The eager reference's precisions: ``fp32`` as timm builds the network, ``unfused`` with
# attention as separate matrix products, as the official Depth Anything V2 code runs it
# without xFormers.
UNFUSED = "unfused"
GEMM_SIDE = 2048
GEMM_RUNS = 9


class EagerRuntime:
    def __init__(self, handle: WeightsHandle, threads: int, precision: str = "fp32") -> None:
        import torch
        from timm.layers import set_fused_attn

        torch.set_num_threads(threads)
        self.label = f"torch eager {precision}"
        self._torch = torch
        set_fused_attn(precision != UNFUSED)  # read when the attention modules are built
        self.model = handle.load().model

    def prepare(self, shape: tuple[int, int]) -> None:
        """Nothing to build ahead."""

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(net_input)[None])[0].numpy()

    def gflop(self, net_input: np.ndarray) -> float:
        """The network's arithmetic for one input, in GFLOP (a multiply-add is two), as
        torch's flop counter counts it: convolutions, matrix products, attention."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.infer(net_input)
        return counter.get_total_flops() / 1e9


def gemm_gflops() -> float:
    """This machine's fp32 matrix-multiply throughput on the threads torch was given
    (median of a few square products): the rate no network can beat here."""
    import torch

    a, b = torch.randn(GEMM_SIDE, GEMM_SIDE), torch.randn(GEMM_SIDE, GEMM_SIDE)
    torch.mm(a, b)
    seconds = []
    for _ in range(GEMM_RUNS):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * GEMM_SIDE**3 / float(np.median(seconds)) / 1e9
