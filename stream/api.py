"""depthstream from Python: depth and obstacle readings as plain iterators.

    from depthstream import open_depth

    with open_depth("0", config="config.toml") as frames:
        for frame in frames:
            ahead = frame.obstacles.sectors[len(frame.obstacles.sectors) // 2]
            if frame.metres is not None and ahead.warning:
                stop_motors()

Only the newest result waits for the consumer: a slow loop skips stale
frames instead of acting on old ones.  Closing the stream (or leaving the
``with``) stops the pipeline's threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthstream.stream.assembly import open_pipeline
from depthstream.stream.config import load_config
from depthstream.stream.geometry import LaserScan, PointCloud
from depthstream.stream.obstacles import ObstacleReading
from depthstream.stream.outputs import Outputs
from depthstream.stream.pipeline import Pipeline, Result
from depthstream.stream.scene import Scenes
from depthstream.stream.sinks.latest import LatestResult


@dataclass(frozen=True, kw_only=True)
class DepthFrame:
    """One processed frame.

    ``bgr``: the camera frame, HxWx3 uint8.  ``inverse_depth``: float32, frame
    size, relative (bigger = nearer).  ``metres``: float32 metric depth at
    frame size when calibrated, else None.  ``obstacles``: the sector reading.
    ``capture_time``: wall-clock seconds when the frame was captured.
    ``points`` (a :class:`~stream.geometry.PointCloud`) and ``scan`` (a
    :class:`~stream.geometry.LaserScan`): when calibrated and ``[camera]``
    gives the intrinsics, else None.
    """

    seq: int
    capture_time: float
    bgr: np.ndarray
    inverse_depth: np.ndarray
    metres: np.ndarray | None
    obstacles: ObstacleReading | None
    points: PointCloud | None = None
    scan: LaserScan | None = None


class DepthStream(AbstractContextManager):
    """An iterator of :class:`DepthFrame` over a running pipeline; close it to stop."""

    def __init__(self, pipeline: Pipeline, scenes: Scenes) -> None:
        self._pipeline = pipeline
        self._scenes = scenes
        self._latest = LatestResult()
        self._closed = False
        try:
            pipeline.add_sink(self._latest)
            pipeline.start()
        except BaseException:
            pipeline.join()
            raise

    def __iter__(self) -> Iterator[DepthFrame]:
        return self

    def __next__(self) -> DepthFrame:
        while not self._closed:
            result = self._latest.get(timeout=0.2)
            if result is not None:
                return _depth_frame(result, self._scenes)
            if self._pipeline.finished():
                break
        raise StopIteration

    def close(self) -> None:
        """Stop the pipeline and wait for its threads; iteration ends."""
        self._closed = True
        self._pipeline.join()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _depth_frame(result: Result, scenes: Scenes) -> DepthFrame:
    """Made in the consumer's thread, so frames it skips cost no conversion."""
    scene = scenes.scene(result)
    return DepthFrame(
        seq=result.frame.seq,
        capture_time=result.frame.wall_time,
        bgr=cv2.cvtColor(result.frame.rgb, cv2.COLOR_RGB2BGR),
        inverse_depth=result.depth.resized,
        metres=scene.depth if scene.metric else None,
        obstacles=scene.obstacles,
        points=scene.cloud,
        scan=scene.scan,
    )


def open_depth(
    source: str = "sample",
    config: str | Path | None = None,
    weights: str | None = None,
    *,
    loop: bool = False,
    outputs: Outputs | None = None,
) -> DepthStream:
    """Start depth on ``source`` (any spec ``depthstream run`` takes) with the config file's
    settings (default: ``$DEPTHSTREAM_CONFIG`` or ``./config.toml``), obstacle readings
    included, and points and scans when calibrated with known intrinsics.  ``outputs``:
    what the run also records or sends, as ``depthstream run``'s flags do
    (``Outputs(mcap="run.mcap", mqtt="mqtt://broker/robot")``), checked before it starts."""
    cfg = load_config(config)
    pipeline = open_pipeline(
        cfg, source, weights=weights, loop=loop, obstacles=True, overlay=False, outputs=outputs
    )
    return DepthStream(pipeline, Scenes.of(cfg.camera, cfg.geometry))


def obstacle_readings(
    source: str = "sample", config: str | Path | None = None, weights: str | None = None
) -> Iterator[ObstacleReading]:
    """Yield one :class:`ObstacleReading` per processed frame until the source ends; closing
    the iterator (or leaving the ``for``) stops the pipeline."""
    with open_depth(source, config, weights) as frames:
        for frame in frames:
            if frame.obstacles is not None:
                yield frame.obstacles
