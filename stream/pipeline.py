"""Wires a source, the estimator, the renderer and the sinks together.

The capture thread decodes into a bounded queue; the calling thread runs
inference, renders and hands each view to the sinks.  Nothing here knows what
kind of source or sink it is driving.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from capture.frame import Frame
from stream.estimator import DepthEstimator, DepthMap
from stream.render import DepthRenderer

Sink = Callable[[Frame, DepthMap, np.ndarray], None]
_END = object()


@dataclass
class RunStats:
    frames_captured: int = 0
    frames_processed: int = 0


class Pipeline:
    """capture thread -> bounded queue -> inference + render (caller's thread) -> sinks."""

    def __init__(
        self,
        source: Iterable[Frame],
        estimator: DepthEstimator,
        renderer: DepthRenderer,
        sinks: list[Sink],
        queue_size: int = 1,
        max_frames: int | None = None,
    ) -> None:
        self.source = source
        self.estimator = estimator
        self.renderer = renderer
        self.sinks = sinks
        self.max_frames = max_frames
        self.stats = RunStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max(queue_size, 1))
        self._stop = threading.Event()
        self._error: BaseException | None = None

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _capture(self) -> None:
        try:
            for frame in self.source:
                if self._stop.is_set():
                    break
                self.stats.frames_captured += 1
                self._put(frame)
        except BaseException as exc:
            self._error = exc
        finally:
            self._put(_END)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> RunStats:
        """Process until the source ends, ``max_frames`` is reached or :meth:`stop` is called."""
        thread = threading.Thread(target=self._capture, name="capture", daemon=True)
        thread.start()
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                depth = self.estimator(item.rgb)
                view = self.renderer.render(item.rgb, depth)
                for sink in self.sinks:
                    sink(item, depth, view)
                self.stats.frames_processed += 1
                if self.max_frames is not None and self.stats.frames_processed >= self.max_frames:
                    break
        finally:
            self._stop.set()
            thread.join()
        if self._error is not None:
            raise self._error
        return self.stats
