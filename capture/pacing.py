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

from depthstream.capture.source import Frame, Source, SourceStatus

# How long a late arrival keeps holding later frames: a punctual stream is free again
# within this, while bursts that recur sooner (HLS segments) keep being paced.
HOLD_MEMORY = 2.0


class JitterBuffer:
    """Release times from arrival times and timestamps (arithmetic only, no threads).

    A frame's offset is its arrival minus its timestamp; the reference is the most
    punctual offset seen in a recent window.  A frame's *lateness* is its offset minus
    the reference as it stood when the frame came, so a start-up or reconnect backlog
    (each frame more punctual than the one before) is never late and never held.  Frames
    are held to the largest offset of the late arrivals of the last :data:`HOLD_MEMORY`
    seconds, at most ``max_delay`` past the reference: a burst after a late arrival (an
    HLS segment, a stream after a hiccup) plays out at its timestamps' pace, and a
    punctual stream is not held.
    A frame later than ``max_delay`` goes at once, and so does the rest of its burst:
    a backlog after a long stall is skipped, not replayed.  Frames late for a whole
    window mean the delay itself grew: the reference restarts there, as it does when a
    timestamp jumps back or far (a new stream).

    ``source_delay`` of a frame is its lateness: about a segment's length for the
    first frame of an HLS segment, near zero for a steady camera.
    """

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay
        self.window = max(2 * max_delay, 1.0)
        self._offsets: deque[tuple[float, float]] = deque()  # (arrival, offset)
        self._held: deque[tuple[float, float]] = deque()  # (arrival, offset) of late arrivals
        self._reference: float | None = None
        self._last: tuple[float, float] | None = None  # (arrival, pts)
        self._late_burst = False
        self._late_since: float | None = None

    def _restart(self, offset: float) -> None:
        self._offsets.clear()
        self._held.clear()
        self._reference = offset
        self._late_burst = False
        self._late_since = None

    def _forget(self, arrival: float) -> None:
        while self._offsets and self._offsets[0][0] < arrival - self.window:
            self._offsets.popleft()
        while self._held and self._held[0][0] < arrival - HOLD_MEMORY:
            self._held.popleft()
        if self._offsets:
            self._reference = min(o for _, o in self._offsets)

    def schedule(self, arrival: float, pts: float | None) -> tuple[float, float]:
        """``(release time, source delay)`` of a frame that arrived at ``arrival``."""
        if pts is None:
            return arrival, 0.0
        offset = arrival - pts
        last, self._last = self._last, (arrival, pts)
        if self._reference is None or pts < last[1] or pts - last[1] > self.max_delay + self.window:
            self._restart(offset)
        self._forget(arrival)
        lateness = max(offset - self._reference, 0.0)
        late = lateness > self.max_delay
        if late and self._late_since is not None and arrival - self._late_since > self.window:
            self._restart(offset)
            lateness, late = 0.0, False
        if not late:
            self._late_since = None
        elif self._late_since is None:
            self._late_since = arrival
        burst = last is not None and arrival - last[0] < (pts - last[1]) / 2
        self._late_burst = late or (burst and self._late_burst and lateness > 0)
        self._offsets.append((arrival, offset))
        self._reference = min(self._reference, offset)
        if self._late_burst:
            return arrival, lateness
        if lateness > 0:
            self._held.append((arrival, offset))
        latest = max((held for _, held in self._held), default=self._reference)
        hold_to = min(latest, self._reference + self.max_delay)
        return max(pts + hold_to, arrival), lateness


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
