"""The plain ``nn.Module`` in fp32: the reference every benchmarked path is compared with, and
what torch hub users run."""

from __future__ import annotations

import numpy as np

from depthstream.stream.model.handle import WeightsHandle


class EagerRuntime:
    def __init__(self, handle: WeightsHandle, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.label = "torch eager fp32"
        self._torch = torch
        self.model = handle.load().model

    def prepare(self, shape: tuple[int, int]) -> None:
        """Nothing to build ahead."""

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(net_input)[None])[0].numpy()
