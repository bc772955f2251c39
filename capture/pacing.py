"""A bursty live source's frames handed on at the pace of their timestamps.

HLS delivers a whole segment at once and RTSP catches up in a burst after a
network hiccup; behind a newest-frame-only queue a burst leaves only its last
frame.  :class:`JitterBuffer` gives each frame a release time so a burst plays
out evenly, never holding a frame longer than ``max_delay``; what comes later
than that goes at once, which skips ahead.  :class:`PacedSource` reads the
wrapped source on its own thread so decoding never waits for a release.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Iterator

from capture.source import Frame, Source, SourceStatus


class JitterBuffer:
    """Release times from arrival times and timestamps (arithmetic only, no threads).

    A frame's offset is its arrival minus its timestamp; the most punctual offset of
    a recent window (twice ``max_delay``) is the reference.  Frames are held to the largest
    recent offset, at most ``max_delay`` past the reference, so a burst such as an HLS
    segment plays out evenly.  A frame later than that is late and goes at once, and
    so does the rest of its burst (frames arriving faster than their timestamps
    advance): a backlog after a hiccup is skipped, not replayed.  Frames late for a
    whole window mean the delay itself grew: the reference restarts there, as it does
    when a timestamp jumps back or far (a new stream).

    ``source_delay`` of a frame is its offset minus the reference: about a segment's
    length for the first frame of an HLS segment, near zero for a steady camera.
    """

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay
        self.window = max(2 * max_delay, 1.0)
        self._offsets: deque[tuple[float, float]] = deque()  # (arrival, offset), not late
        self._reference: float | None = None
        self._last: tuple[float, float] | None = None  # (arrival, pts)
        self._late_burst = False
        self._late_since: float | None = None

    def _restart(self, offset: float) -> None:
        self._offsets.clear()
        self._reference = offset
        self._late_burst = False
        self._late_since = None

    def schedule(self, arrival: float, pts: float | None) -> tuple[float, float]:
        """``(release time, source delay)`` of a frame that arrived at ``arrival``."""
        if pts is None:
            return arrival, 0.0
        offset = arrival - pts
        last, self._last = self._last, (arrival, pts)
        if self._reference is None or pts < last[1] or pts - last[1] > self.max_delay + self.window:
            self._restart(offset)
        burst = last is not None and arrival - last[0] < (pts - last[1]) / 2
        while self._offsets and self._offsets[0][0] < arrival - self.window:
            self._offsets.popleft()
        if self._offsets:
            self._reference = min(o for _, o in self._offsets)
        late = offset > self._reference + self.max_delay
        if late and self._late_since is not None and arrival - self._late_since > self.window:
            self._restart(offset)
            late = False
        self._late_since = (
            (arrival if self._late_since is None else self._late_since) if late else None
        )
        self._late_burst = late or (burst and self._late_burst and offset > self._reference)
        if self._late_burst:
            return arrival, offset - self._reference
        self._offsets.append((arrival, offset))
        self._reference = min(self._reference, offset)
        hold_to = min(max(o for _, o in self._offsets), self._reference + self.max_delay)
        return max(pts + hold_to, arrival), offset - self._reference


class PacedSource:
    """``source`` with its frames released by a :class:`JitterBuffer`; otherwise the same
    :class:`~capture.source.Source`.  Each frame keeps its arrival time as ``captured_at``
    (the wait counts in its age) and carries its ``source_delay``."""

    def __init__(self, source: Source, max_delay: float) -> None:
        self.source = source
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._buffer: deque[tuple[float, Frame]] = deque()
        self._reading = False
        self._stopped = False
        self._reader: threading.Thread | None = None

    @property
    def live(self) -> bool:
        return self.source.live

    @property
    def size(self) -> tuple[int, int] | None:
        return self.source.size

    @property
    def fps(self) -> float:
        return self.source.fps

    @property
    def frame_count(self) -> int | None:
        return self.source.frame_count

    @property
    def status(self) -> SourceStatus:
        return self.source.status

    def _read(self) -> None:
        jitter = JitterBuffer(self.max_delay)
        try:
            for frame in self.source:
                release, delay = jitter.schedule(frame.captured_at, frame.pts)
                with self._cond:
                    self._buffer.append((release, dataclasses.replace(frame, source_delay=delay)))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        self._reading = True
        self._reader = threading.Thread(target=self._read, name="capture-read", daemon=True)
        self._reader.start()
        while True:
            with self._cond:
                while not self._stopped:
                    if self._buffer:
                        wait = self._buffer[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    elif not self._reading:
                        return
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, frame = self._buffer.popleft()
            yield frame

    def stop(self) -> None:
        self.source.stop()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._reader is not None:
            self._reader.join()
        self.source.close()
