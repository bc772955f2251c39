"""A runtime opened, prepared and run on one dedicated thread, whichever thread calls it.

For torch: its OpenMP (libgomp) keeps a team of worker threads for each
thread that calls into the model.  Once a second thread has called (the main
thread warming the model up, then the pipeline's inference thread running
it), libgomp counts more threads than cores, and its workers sleep at every
barrier instead of spinning, which slows every frame.  Binding also gives
torch's thread count, which OpenMP keeps per thread, to the thread that runs
the model.  Calls are serialised by the one thread; the hand-over costs two
thread wake-ups per call, so only torch is bound.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from depthstream.stream.runtimes.base import Runtime


class ThreadBoundRuntime:
    def __init__(self, open_runtime: Callable[[], Runtime]) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runtime")
        try:
            self._runtime = self._thread.submit(open_runtime).result()
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        self.label = self._runtime.label

    def prepare(self, shape: tuple[int, int]) -> None:
        self._thread.submit(self._runtime.prepare, shape).result()

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        return self._thread.submit(self._runtime.infer, net_input).result()
