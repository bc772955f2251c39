"""Runs a source through the model to its outputs, on three threads.

capture thread -> :class:`FrameQueue` -> inference thread -> :class:`FrameQueue`
-> output thread (render, readout, overlay, sinks).  Each thread keeps one
job, so decoding, inference and rendering/encoding overlap on the cores
instead of taking turns: the model never waits for a frame to be coloured or
recorded.  Both queues are bounded: live sources drop the oldest item (a slow
stage makes frames drop rather than grow old); offline sources wait, and
every frame is processed.  Nothing here knows what kind of source or sink it
drives: sources meet :class:`capture.source.Source`, outputs :class:`Sink`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from depthstream.capture.source import Frame, Source
from depthstream.stream.calibration import Fit, Point
from depthstream.stream.config import SIDE_BY_SIDE, CameraSettings
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import DepthEstimator, DepthMap
from depthstream.stream.frame_queue import FrameQueue
from depthstream.stream.obstacles import ObstacleReading
from depthstream.stream.render.overlay import draw_figures, draw_sectors
from depthstream.stream.render.renderer import DepthRenderer, RenderSettings
from depthstream.stream.stabilizer import Anchor, Stabilizer
from depthstream.stream.stats import RunStats, StatsSnapshot, format_line
from depthstream.stream.turns import Turns

log = logging.getLogger("depthstream")
MAX_CONSECUTIVE_FAILURES = 10


@dataclass(frozen=True, kw_only=True)
class Inferred:
    """A frame with its depth, on its way from the inference to the output thread."""

    frame: Frame
    depth: DepthMap
    inference_ms: float

    @property
    def seq(self) -> int:
        return self.frame.seq


@dataclass(frozen=True, kw_only=True)
class Result:
    """One processed frame as every output sees it.

    ``view``: the rendered BGR image (the output's own copy).  ``far``,
    ``near``: the colour range it was rendered with, in relative inverse depth.
    ``depth`` is stabilized when the pipeline stabilizes; ``stabilizer`` then
    says how (smoothed, passthrough or reset), else it is None.
    """

    frame: Frame
    depth: DepthMap
    view: np.ndarray
    inference_ms: float
    age_ms: float
    far: float
    near: float
    obstacles: ObstacleReading | None = None
    stabilizer: str | None = None


@runtime_checkable
class Sink(Protocol):
    """Where results go: a recording, a window, a progress bar, viewers, a robot's loop.

    :meth:`write` runs on the pipeline's output thread for every result and
    must not block for long; :meth:`close` runs once, when the pipeline is
    joined, from whichever thread joins it.
    """

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Reporting(Protocol):
    """A sink with a connection of its own (a media server, a broker) that reports on it.

    :meth:`status` is safe from any thread and returns ``state`` (a word),
    ``connected``, and the counters ``sent``, ``dropped`` and ``reconnects``.
    """

    name: str

    def status(self) -> dict[str, Any]: ...


class Readout(Protocol):
    """Something measured on every frame's depth through a calibration (the obstacle meter);
    :meth:`calibrate` and :attr:`calibration` are safe from any thread."""

    def read(self, frame: Frame, depth: DepthMap) -> ObstacleReading: ...

    def calibrate(self, result: Fit, points: Sequence[Point]) -> None: ...

    @property
    def calibration(self) -> Fit | None: ...


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """What outputs need to know of the source: its nominal rate, whether it is live (else
    read as fast as processed) and its length in frames when known."""

    fps: float
    live: bool
    frame_count: int | None


@dataclass(frozen=True, kw_only=True)
class PipelineStatus:
    """A camera now: whether its threads still run, its source's state, its figures."""

    alive: bool
    source: str
    frames_processed: int
    recent_fps: float


def leave_cores_to_the_model() -> None:
    """Make OpenCV run single-threaded in this process: the model's runtime already keeps
    every core busy, and OpenCV's worker pool would only preempt it for small image
    operations."""
    cv2.setNumThreads(1)


class Pipeline(AbstractContextManager):
    """Runs capture, inference and output threads until the source ends or :meth:`stop`.

    Used as a context manager, leaving the block joins it: threads stopped,
    source closed, every sink closed.
    """

    def __init__(
        self,
        source: Source,
        estimator: DepthEstimator,
        renderer: DepthRenderer,
        sinks: Iterable[Sink] = (),
        *,
        settings: CameraSettings | None = None,
        queue_size: int = 1,
        max_frames: int | None = None,
        overlay: bool = True,
        log_interval: float = 5.0,
        readout: Readout | None = None,
        stabilizer: Stabilizer | None = None,
        turns: Turns | None = None,
    ) -> None:
        self._settings = settings or CameraSettings()
        self._source = source
        self._turns = turns
        self._log_prefix = f"{self._settings.name}: " if self._settings.named else ""
        self._estimator = estimator
        self._renderer = renderer
        self._readout = readout
        self._stabilizer = stabilizer
        self._max_frames = max_frames
        self._overlay = overlay
        self._log_interval = log_interval
        self._queue: FrameQueue[Frame] = FrameQueue(queue_size, drop_oldest=source.live)
        self._inferred: FrameQueue[Inferred] = FrameQueue(1, drop_oldest=source.live)
        self._stats = RunStats()
        self._done = threading.Event()
        self._sinks: list[Sink] = []
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._closed = False
        self._started = False
        self._last_log = time.monotonic()
        self._threads = [
            threading.Thread(target=self._guard(self._capture), name="capture", daemon=True),
            threading.Thread(target=self._guard(self._infer), name="inference", daemon=True),
            threading.Thread(target=self._guard(self._output), name="output", daemon=True),
        ]
        for sink in sinks:
            self.add_sink(sink)

    @property
    def settings(self) -> CameraSettings:
        """The camera's settings, as the assembly built them (immutable)."""
        return self._settings

    def source_info(self) -> SourceInfo:
        s = self._source
        return SourceInfo(fps=s.fps, live=s.live, frame_count=s.frame_count)

    def status(self) -> PipelineStatus:
        """Safe from any thread, like every reading method here."""
        processed, fps = self._stats.progress()  # not a snapshot: this runs per frame
        return PipelineStatus(
            alive=not self._done.is_set(),
            source=self._source.status.state,
            frames_processed=processed,
            recent_fps=fps,
        )

    def stats(self) -> StatsSnapshot:
        """The per-frame figures so far (timings, the frame-age histogram)."""
        return self._stats.snapshot()

    def finished(self) -> bool:
        """Whether the threads have ended: the source ended, a stage broke, or stopped."""
        return self._done.is_set()

    def stabilizing(self) -> bool:
        return self._stabilizer is not None

    def render_settings(self) -> RenderSettings:
        return self._renderer.settings()

    def configure_render(self, **change: Any) -> RenderSettings:
        """Change how the live view is coloured from the next frame on (see
        :meth:`DepthRenderer.configure`)."""
        return self._renderer.configure(**change)

    def estimate(self, rgb: np.ndarray) -> DepthMap:
        """This camera's model on one still image (taking turns with the live frames)."""
        return self._estimator(rgb)

    def render_still(self, rgb: np.ndarray, depth: DepthMap) -> np.ndarray:
        """A still's heat map with this camera's settings and a colour range of its own, so
        that it cannot move the live view's."""
        cfg = self._settings.config
        renderer = DepthRenderer.from_config(cfg.normalize, cfg.render, self._estimator.stamp)
        return renderer.render(rgb, depth).image

    def calibration(self) -> Fit | None:
        """The calibration the obstacle readings use now (None: uncalibrated or no readout)."""
        return self._readout.calibration if self._readout is not None else None

    def calibrate(self, result: Fit, points: Sequence[Point]) -> Anchor | None:
        """Use a new calibration from the next frame on, and keep the depth in the space of
        the frame it was fitted on; returns that frame (to save with the calibration),
        None when the pipeline does not stabilize."""
        if self._readout is None:
            raise RuntimeError("this pipeline reads no obstacles to calibrate")
        self._readout.calibrate(result, points)
        anchor = self.anchor()
        if self._stabilizer is not None:
            self._stabilizer.use_anchor(anchor)
        return anchor

    def anchor(self) -> Anchor | None:
        """The stabilizer's newest frame (image and depth), None when it does not stabilize."""
        return self._stabilizer.anchor() if self._stabilizer is not None else None

    def add_sink(self, sink: Sink) -> None:
        """Send every result to ``sink`` too; only before :meth:`start`."""
        if self._started:
            raise RuntimeError("sinks are added before the pipeline starts")
        if not isinstance(sink, Sink):
            raise TypeError(f"{type(sink).__name__} is not a Sink (write and close)")
        self._sinks.append(sink)

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
            for frame in self._source:
                if self._stop.is_set() or not self._queue.put(frame, timeout=None):
                    break
        finally:
            self._queue.close()

    def _infer(self) -> None:
        try:
            self._stage(self._queue, self._estimate)
        finally:
            self._inferred.close()

    def _estimate(self, frame: Frame) -> None:
        if self._turns is None:
            self._infer_one(frame)
            return
        with self._turns.turn():
            # Another camera's inference ran while this one waited: take the newest frame.
            self._infer_one(self._queue.newest_or(frame))

    def _infer_one(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        depth = self._estimator(frame.rgb)
        inference_ms = (time.perf_counter() - t0) * 1000.0
        self._inferred.put(Inferred(frame=frame, depth=depth, inference_ms=inference_ms))

    def _output(self) -> None:
        try:
            self._stage(self._inferred, self._deliver)
        finally:
            self._done.set()

    def _stage(self, queue: FrameQueue[Any], step: Callable[[Any], None]) -> None:
        """Apply ``step`` to each item of ``queue`` until the queue is closed and empty or
        the pipeline stops.  One bad frame must not end a live feed; a broken stage (ten
        failures in a row) must."""
        failures = 0
        while not self._stop.is_set():
            item = queue.get(timeout=0.2)
            if item is None:
                if queue.closed:
                    return
                continue
            try:
                step(item)
                failures = 0
            except UserError:
                raise  # an output that cannot be written: no later frame can be either
            except Exception as exc:
                failures += 1
                self._stats.record_failure()
                log.warning("%sframe %d skipped: %s", self._log_prefix, item.seq, exc)
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise

    def _deliver(self, item: Inferred) -> None:
        frame, depth, inference_ms = item.frame, item.depth, item.inference_ms
        state = None
        if self._stabilizer is not None:
            steady = self._stabilizer.apply(frame.rgb, depth.raw)
            depth, state = DepthMap(raw=steady.depth, size=depth.size), steady.state
            self._stats.record_stabilizer(state)
        rendered = self._renderer.render(frame.rgb, depth)
        # A copy: outputs in other threads keep it while the renderer reuses its buffer.
        view = rendered.image.copy()
        obstacles = self._readout.read(frame, depth) if self._readout is not None else None
        age_ms = (time.monotonic() - frame.captured_at) * 1000.0
        if self._overlay:
            if obstacles is not None:
                draw_sectors(view, obstacles, rendered.layout == SIDE_BY_SIDE)
            if self._source.live:  # rate and age mean nothing in a file processed offline
                draw_figures(view, self._stats.recent_fps, inference_ms, age_ms)
        result = Result(
            frame=frame,
            depth=depth,
            view=view,
            inference_ms=inference_ms,
            age_ms=age_ms,
            far=rendered.far,
            near=rendered.near,
            obstacles=obstacles,
            stabilizer=state,
        )
        for sink in self._sinks:
            sink.write(result)
        processed = self._stats.record(inference_ms, age_ms, frame.source_delay * 1000.0)
        if self._max_frames is not None and processed >= self._max_frames:
            self.stop()
        if time.monotonic() - self._last_log >= self._log_interval:
            self._last_log = time.monotonic()
            log.info("%s%s", self._log_prefix, format_line(self.summary()))

    def start(self) -> None:
        self._started = True
        leave_cores_to_the_model()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask every thread to finish (safe from any thread or a signal handler)."""
        self._stop.set()
        self._source.stop()
        self._queue.close()
        self._inferred.close()

    def join(self) -> None:
        """Stop, wait for the threads, release the source and close the sinks; re-raise the
        first error a thread or a sink met."""
        self.stop()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()
        if not self._closed:
            self._closed = True
            self._source.close()
            for sink in self._sinks:
                try:
                    sink.close()
                except Exception as exc:
                    self._errors.append(exc)
        if self._errors:
            raise self._errors[0]

    def run(self) -> None:
        """Start, wait until done or stopped, then join (the waits let signal handlers run)."""
        self.start()
        try:
            while not self._done.wait(0.1):
                pass
        finally:
            self.join()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        if error is None:
            self.join()
            return
        try:
            self.join()
        except Exception:
            log.debug("while stopping after an error", exc_info=True)

    def summary(self) -> dict[str, Any]:
        """The run's figures, with each reporting output's status under ``outputs``."""
        status = self._source.status
        figures = self._stats.summary(
            self._queue.put_count,
            self._queue.dropped + self._inferred.dropped,
            status.reconnects,
            status.corrupt,
        )
        figures = {"model": self._settings.config.model.name, **figures}
        outputs = self.outputs()
        return {**figures, "outputs": outputs} if outputs else figures

    def outputs(self) -> dict[str, dict[str, Any]]:
        """Each reporting sink's status, by its name."""
        return {s.name: s.status() for s in self._sinks if isinstance(s, Reporting)}
