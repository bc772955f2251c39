"""Obstacle readings as a plain Python iterator, for a robot program to consume.

    from stream.robot import obstacle_readings

    for reading in obstacle_readings("0", config="config.toml"):
        ahead = reading.sectors[len(reading.sectors) // 2]
        if ahead.warning:
            stop_motors()

Only the newest reading waits for the consumer: a slow control loop skips
stale readings instead of acting on old ones.  Closing the iterator (or
leaving the ``for``) stops the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from capture.spec import open_source
from stream.config import load_config
from stream.estimator import open_estimator
from stream.frame_queue import FrameQueue
from stream.obstacles import ObstacleReading
from stream.pipeline import Pipeline
from stream.readout import ObstacleMeter
from stream.render import DepthRenderer


def obstacle_readings(
    source: str = "sample", config: str | Path | None = None, weights: str | None = None
) -> Iterator[ObstacleReading]:
    """Yield one :class:`ObstacleReading` per processed frame until the source ends."""
    cfg = load_config(config)
    estimator, stamp = open_estimator(cfg, weights)
    src = open_source(source, cfg, live_file=True)
    latest: FrameQueue[ObstacleReading] = FrameQueue(1, drop_oldest=True)
    pipeline = Pipeline(
        src,
        estimator,
        DepthRenderer.from_config(cfg, stamp),
        [lambda r: latest.put(r.obstacles)],
        overlay=False,
        readout=ObstacleMeter.from_config(cfg),
    )
    pipeline.start()
    try:
        while True:
            reading = latest.get(timeout=0.2)
            if reading is not None:
                yield reading
            elif pipeline.done.is_set():
                break
    finally:
        pipeline.join()
