"""Video files decoded with PyAV, every frame, in order.

Damaged files are common in the wild: a packet that fails to decode is
skipped and counted, and decoding goes on with the next one.  A file that
cannot be opened at all is a :class:`UserError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import av

from capture.frame import Frame
from stream.errors import UserError

log = logging.getLogger("depthstream")


class FileSource:
    """Iterates the frames of one video file as RGB :class:`Frame` records."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise UserError(f"{self.path}: not a readable video ({exc.strerror or exc})") from None
        if not self._container.streams.video:
            self._container.close()
            raise UserError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.corrupt_packets = 0

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else 25.0

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the decoded frames."""
        return self._stream.codec_context.height, self._stream.codec_context.width

    @property
    def frame_count(self) -> int | None:
        return self._stream.frames or None

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        time_base = self._stream.time_base
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self.corrupt_packets += 1
                log.debug("skipping undecodable packet in %s: %s", self.path, exc)
                continue
            for frame in frames:
                pts = float(frame.pts * time_base) if frame.pts is not None else None
                yield Frame(frame.to_ndarray(format="rgb24"), seq, pts, time.monotonic())
                seq += 1

    def close(self) -> None:
        self._container.close()
