"""Video files decoded with PyAV.

Offline mode hands over every frame as fast as the consumer takes them (for
recording a file).  Live mode paces frames at the file's own rate, so a file
stands in for a camera, and can loop.  A file that cannot be opened at all is a
:class:`SourceError`; packets that fail to decode are skipped and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av

from depthstream.capture.decode import decode_rgb
from depthstream.capture.errors import SourceError
from depthstream.capture.source import ENDED, Frame, SourceStatus


class FileSource:
    """Iterates the frames of one video file as RGB :class:`Frame` records."""

    def __init__(self, path: str | Path, live: bool = False, loop: bool = False) -> None:
        self.path = Path(path)
        self.live = live
        self.loop = loop
        self.status = SourceStatus()
        self._closed = threading.Event()
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"{self.path}: not a readable video ({exc.strerror or exc})"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

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
        return None if self.loop else (self._stream.frames or None)

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        offset = 0.0
        start: float | None = None
        while not self._closed.is_set():
            last_pts: float | None = None
            for rgb, pts in decode_rgb(self._container, self.status):
                # Files with missing or stuck timestamps are paced at the nominal rate.
                if last_pts is not None and (pts is None or pts <= last_pts):
                    pts = last_pts + 1.0 / self.fps
                last_pts = pts if pts is not None else 0.0
                if self.live:
                    start = start if start is not None else time.monotonic() - offset - last_pts
                    delay = start + offset + last_pts - time.monotonic()
                    if delay > 0 and self._closed.wait(delay):
                        return
                yield Frame(rgb=rgb, seq=seq, pts=offset + last_pts, captured_at=time.monotonic())
                seq += 1
            if not self.loop or last_pts is None:
                break
            offset += last_pts + 1.0 / self.fps
            self._container.seek(0)
        self.status.set_state(ENDED)

    def stop(self) -> None:
        """Wake a paced wait and end iteration (safe from any thread)."""
        self._closed.set()

    def close(self) -> None:
        """Release the file; call after the reading thread has finished."""
        self._closed.set()
        self._container.close()
