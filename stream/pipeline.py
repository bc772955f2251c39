"""Wires a source, the estimator, the renderer and the sinks together.

capture thread -> bounded :class:`FrameQueue` -> inference thread -> sinks.
The capture thread drains the source continuously, so a slow model makes
frames drop (live) rather than grow old; for offline sources the queue waits
and every frame is processed.  Nothing here knows what kind of source or sink
it drives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from capture.frame import Frame
from capture.spec import Source
from stream.estimator import DepthEstimator, DepthMap
from stream.frame_queue import FrameQueue
from stream.obstacles import ObstacleReading
from stream.overlay import draw_figures, draw_sectors
from stream.render import DepthRenderer
from stream.stats import RunStats

log = logging.getLogger("depthstream")


@dataclass
class Result:
    """One processed frame as every output sees it."""

    frame: Frame
    depth: DepthMap
    view: np.ndarray
    inference_ms: float
    age_ms: float
    obstacles: ObstacleReading | None = None


Sink = Callable[[Result], None]
Readout = Callable[[Frame, DepthMap], ObstacleReading]
MAX_CONSECUTIVE_FAILURES = 10


class Pipeline:
    """Runs capture and inference threads until the source ends or :meth:`stop` is called."""

    def __init__(
        self,
        source: Source,
        estimator: DepthEstimator,
        renderer: DepthRenderer,
        sinks: list[Sink],
        *,
        queue_size: int = 1,
        max_frames: int | None = None,
        overlay: bool = True,
        log_interval: float = 5.0,
        readout: Readout | None = None,
    ) -> None:
        self.source = source
        self.estimator = estimator
        self.renderer = renderer
        self.sinks = sinks
        self.max_frames = max_frames
        self.overlay = overlay
        self.readout = readout
        self.log_interval = log_interval
        self.queue: FrameQueue[Frame] = FrameQueue(queue_size, drop_oldest=source.live)
        self.stats = RunStats()
        self.latest: Result | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._closed = False
        self._threads = [
            threading.Thread(target=self._guard(self._capture), name="capture", daemon=True),
            threading.Thread(target=self._guard(self._infer), name="inference", daemon=True),
        ]

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:
                self._errors.append(exc)
                self.stop()

        return run

    def _capture(self) -> None:
        try:
            for frame in self.source:
                if self._stop.is_set() or not self.queue.put(frame, timeout=None):
                    break
        finally:
            self.queue.close()

    def _infer(self) -> None:
        last_log = time.monotonic()
        failures = 0
        try:
            while not self._stop.is_set():
                frame = self.queue.get(timeout=0.2)
                if frame is None:
                    if self.queue.closed:
                        break
                    continue
                try:
                    self._process(frame)
                    failures = 0
                except Exception as exc:
                    # One bad frame must not end a live feed; a broken pipeline must.
                    failures += 1
                    self.source.status.corrupt += 1
                    log.warning("frame %d skipped: %s", frame.seq, exc)
                    if failures >= MAX_CONSECUTIVE_FAILURES:
                        raise
                if self.max_frames is not None and self.stats.frames_processed >= self.max_frames:
                    break
                if time.monotonic() - last_log >= self.log_interval:
                    last_log = time.monotonic()
                    log.info("%s", self.summary())
        finally:
            self.done.set()

    def _process(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        depth = self.estimator(frame.rgb)
        inference_ms = (time.perf_counter() - t0) * 1000.0
        # A copy: outputs in other threads keep it while the renderer reuses its buffer.
        view = self.renderer.render(frame.rgb, depth).copy()
        obstacles = self.readout(frame, depth) if self.readout is not None else None
        age_ms = (time.monotonic() - frame.captured_at) * 1000.0
        if self.overlay:
            if obstacles is not None:
                draw_sectors(view, obstacles, self.renderer.layout == "side-by-side")
            draw_figures(view, self.stats.recent_fps, inference_ms, age_ms)
        result = Result(frame, depth, view, inference_ms, age_ms, obstacles)
        self.latest = result
        for sink in self.sinks:
            sink(result)
        self.stats.record(inference_ms, age_ms)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask both threads to finish (safe from any thread or a signal handler)."""
        self._stop.set()
        self.source.stop()
        self.queue.close()

    def join(self) -> None:
        """Stop, wait for both threads, release the source; re-raise a thread's error."""
        self.stop()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()
        if not self._closed:
            self._closed = True
            self.source.close()
        if self._errors:
            raise self._errors[0]

    def run(self) -> None:
        """Start, wait until done or stopped, then join (the waits let signal handlers run)."""
        self.start()
        try:
            while not self.done.wait(0.1):
                pass
        finally:
            self.join()

    def summary(self) -> dict[str, Any]:
        status = self.source.status
        return self.stats.summary(
            self.queue.put_count, self.queue.dropped, status.reconnects, status.corrupt
        )
