"""A test sink that runs a function on every result (a slow consumer, a recorder of seqs)."""

from __future__ import annotations

from collections.abc import Callable

from depthstream.stream.pipeline import Result


class CallSink:
    def __init__(self, on_result: Callable[[Result], object]) -> None:
        self.on_result = on_result
        self.closed = False

    def write(self, result: Result) -> None:
        self.on_result(result)

    def close(self) -> None:
        self.closed = True
