"""What every runtime offers the estimator.

A runtime turns one CHW float32 network input into the ``(H, W)`` output.
Runtimes are not thread-safe; :class:`stream.estimator.DepthEstimator`
serialises calls (two inferences at once only fight over the same cores).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Protocol

import numpy as np

from depthstream.stream.config import BACKENDS
from depthstream.stream.errors import UserError


class Runtime(Protocol):
    label: str

    def prepare(self, shape: tuple[int, int]) -> None:
        """Build or load what input ``(H, W)`` needs, before the first frame of that shape."""

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        """Network output (float32, ``(H, W)``) for one ``(3, H, W)`` input."""


def import_for(backend: str) -> ModuleType:
    """Import the package a backend runs on, or say in one line how to get it."""
    package, extra = BACKENDS[backend].package, BACKENDS[backend].extra
    try:
        return importlib.import_module(package)
    except ImportError:
        hint = f"pip install 'depthstream[{extra}]'" if extra else f"pip install {package}"
        raise UserError(f"the {backend} backend needs the {package} package: {hint}") from None


def thread_count(threads: int) -> int:
    """Configured threads, 0 meaning every core."""
    return threads or os.cpu_count() or 1


def uses_bf16(precision: str) -> bool:
    """Whether ``precision`` needs bf16 from the CPU (``bf16``, ``bf16-decoder``): the one
    check every runtime and the bench use before refusing or skipping it."""
    return precision.startswith("bf16")
