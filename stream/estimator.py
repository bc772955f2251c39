"""Image in, inverse relative depth out: transform, traced network, resize back.

One traced module per network input shape (a video has one; still images of
different aspect ratios get one each), all from the on-disk trace cache.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from stream.config import Config
from stream.model.trace import load_or_trace
from stream.model.weights import LoadedModel, choose_weights, load_model
from stream.transform import network_size, to_net_input

UNTRAINED_STAMP = "UNTRAINED WEIGHTS"


@dataclass
class DepthMap:
    """The network's answer for one image.

    ``raw``: float32 at network resolution (bigger = nearer, relative units).
    ``depth``: the same resized (bicubic) to the image size.
    """

    raw: np.ndarray
    depth: np.ndarray


class DepthEstimator:
    """Runs MiDaS small on RGB images with the traced, frozen model."""

    def __init__(self, loaded: LoadedModel, cache_dir: Path) -> None:
        self.loaded = loaded
        self.cache_dir = cache_dir
        self._traced: dict[tuple[int, int], torch.jit.ScriptModule] = {}
        self._lock = threading.Lock()

    def module_for(self, shape: tuple[int, int]) -> torch.jit.ScriptModule:
        """The traced module for one input shape (the pipeline and REST calls share them)."""
        with self._lock:
            if shape not in self._traced:
                self._traced[shape] = load_or_trace(
                    self.loaded.model, self.loaded.digest, shape, self.cache_dir
                )
            return self._traced[shape]

    def warm_up(self, height: int, width: int) -> None:
        """Trace (or load) the module for this frame size before the first frame arrives."""
        self.module_for(network_size(height, width))

    def raw(self, net_input: np.ndarray) -> np.ndarray:
        """Network output for one CHW float32 input."""
        module = self.module_for((net_input.shape[1], net_input.shape[2]))
        with torch.inference_mode():
            return module(torch.from_numpy(net_input)[None])[0].numpy()

    def __call__(self, rgb: np.ndarray) -> DepthMap:
        raw = self.raw(to_net_input(rgb))
        return DepthMap(raw=raw, depth=resize_depth(raw, rgb.shape[:2]))


def resize_depth(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic (align_corners=False) resize to ``(H, W)``, as the official ``run.py`` does."""
    with torch.inference_mode():
        tensor = torch.from_numpy(raw)[None, None]
        return F.interpolate(tensor, size=size, mode="bicubic", align_corners=False)[0, 0].numpy()


def open_estimator(cfg: Config, weights: str | None = None) -> tuple[DepthEstimator, str | None]:
    """Resolve and load the weights, set torch's threads; also return the stamp every
    rendered image must carry (set for untrained weights, so no picture can hide it)."""
    torch.set_num_threads(cfg.model.threads or os.cpu_count() or 1)
    loaded = load_model(choose_weights(weights, cfg))
    stamp = UNTRAINED_STAMP if loaded.choice.synthetic else None
    return DepthEstimator(loaded, cfg.cache_dir()), stamp
