"""What every runtime offers the estimator, and how closely each must match fp32.

A runtime turns one CHW float32 network input into the ``(H, W)`` output.
Runtimes are not thread-safe; :class:`stream.estimator.DepthEstimator`
serialises calls (two inferences at once only fight over the same cores).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

import numpy as np

from stream.errors import UserError

EXTRA_HINT = "pip install 'depthstream[runtimes]'"


class Runtime(Protocol):
    label: str

    def prepare(self, shape: tuple[int, int]) -> None:
        """Build or load what input ``(H, W)`` needs, before the first frame of that shape."""

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        """Network output (float32, ``(H, W)``) for one ``(3, H, W)`` input."""


@dataclass(frozen=True)
class Tolerance:
    """How far a path may be from the fp32 eager output on the synthetic weights.

    fp32 paths differ only by float32 re-association: ``max_rel_err`` bounds the
    largest difference as a fraction of the output's range.  The random weights
    amplify rounding: folding batch norm exactly (float64) and running eager
    already moves the output by up to 1.05e-4 of its range, so any fused or
    reordered fp32 graph is held to 2e-4 (the eager network itself is
    bit-exact, and tested so).  Reduced precision
    is judged by Pearson correlation; on random weights it is far worse than on
    trained ones, so these floors only catch a broken path, and the fidelity
    bar for making a path the default (r >= 0.99) is checked by the benchmark.
    """

    max_rel_err: float | None = None
    min_pearson: float | None = None


FP32 = Tolerance(max_rel_err=2e-4)
DEFAULT_BAR = 0.99


def import_for(backend: str, module: str) -> ModuleType:
    """Import an optional runtime package, or say in one line how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"the {backend} backend needs the {module} package: {EXTRA_HINT}") from None


def thread_count(threads: int) -> int:
    """Configured threads, 0 meaning every core."""
    return threads or os.cpu_count() or 1
