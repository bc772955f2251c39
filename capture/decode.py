"""The PyAV decode loop that files and network streams share.

A packet that fails to decode is skipped and counted rather than ending the
stream: one corrupt frame must not stop a live feed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from depthstream.capture.source import SourceStatus

log = logging.getLogger("depthstream")


def decode_rgb(
    container: av.container.InputContainer, status: SourceStatus
) -> Iterator[tuple[np.ndarray, float | None]]:
    """Yield ``(rgb, pts_seconds)`` for each frame of the first video stream."""
    stream = container.streams.video[0]
    time_base = stream.time_base
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as exc:
            status.count_corrupt()
            log.debug("skipped an undecodable packet: %s", exc)
            continue
        for frame in frames:
            pts = float(frame.pts * time_base) if frame.pts is not None and time_base else None
            yield frame.to_ndarray(format="rgb24"), pts


def spread_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` RGB frames spread evenly over a video file, for sampling scenes.

    Two passes (count, then keep the picks) so only the picked frames are
    ever held in memory; container frame counts are unreliable for some files.
    """
    with av.open(str(path)) as container:
        total = sum(1 for _ in container.decode(video=0))
    wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
    with av.open(str(path)) as container:
        return [
            frame.to_ndarray(format="rgb24")
            for i, frame in enumerate(container.decode(video=0))
            if i in wanted
        ]
