"""Weights named by a stable key, loaded into torch only when something needs them.

Caches derived from the weights (traced modules, ONNX files, int8 models) are
keyed by the file's SHA-256, so a run whose cache is warm never has to build
the network: the ONNX Runtime and OpenVINO paths then start without torch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from depthstream.stream.model.locate import WeightsChoice, file_digest
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS, ModelSpec

if TYPE_CHECKING:
    from depthstream.stream.model.weights import LoadedModel


class WeightsHandle:
    """One set of weights: ``key`` for caches, :meth:`load` for the network itself."""

    def __init__(
        self,
        choice: WeightsChoice,
        load: Callable[[], LoadedModel],
        key: str = "",
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.choice = choice
        self.model = model
        self._load = load
        self._key = key
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_choice(
        cls, choice: WeightsChoice, spec: ModelSpec = MODELS[DEFAULT_MODEL]
    ) -> WeightsHandle:
        def load() -> LoadedModel:
            from depthstream.stream.model.weights import load_model

            return load_model(choice, spec)

        return cls(choice, load, model=spec.name)

    @classmethod
    def of_loaded(cls, loaded: LoadedModel) -> WeightsHandle:
        return cls(loaded.choice, lambda: loaded, key=loaded.digest, model=loaded.name)

    @cached_property
    def key(self) -> str:
        if self._key:
            return self._key
        return "synthetic" if self.choice.path is None else file_digest(self.choice.path)

    def check(self, cache_dir: Path) -> None:
        """Load a weights file not seen before, so that a wrong file is refused before any
        source opens or model is traced.  A file that loaded once is remembered by digest:
        a warm ONNX Runtime or OpenVINO start still needs no torch."""
        if self.choice.path is None:
            return
        marker = cache_dir / "checked" / f"{self.model}-{self.key}"
        if marker.is_file():
            return
        self.load()
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    def load(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded
