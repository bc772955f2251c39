"""What the recordings share: presentation times (so the heat map and the depth recording
line up) and finishing the file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

TIME_BASE = Fraction(1, 1000)


class Timeline:
    """Timestamps in :data:`TIME_BASE` units, strictly increasing.

    ``paced``: each frame at its capture time (a live recording plays at the
    speed the scene happened, gaps included); otherwise frames are spaced at
    the nominal ``fps`` (every frame of a file, offline).
    """

    def __init__(self, fps: float, paced: bool) -> None:
        self.rate = Fraction(fps).limit_denominator(1001)
        self.paced = paced
        self.frames = 0
        self._first: float | None = None
        self._last = -1

    def next(self, captured_at: float | None = None) -> int:
        """The next frame's timestamp (``captured_at``: monotonic capture time, when paced)."""
        if self.paced and captured_at is not None:
            if self._first is None:
                self._first = captured_at
            seconds = captured_at - self._first
        else:
            seconds = self.frames / self.rate
        self._last = max(round(seconds / TIME_BASE), self._last + 1)
        self.frames += 1
        return self._last


def finish(
    container: av.container.OutputContainer, stream: av.VideoStream | None, path: Path
) -> bool:
    """Flush ``stream``'s encoder and close ``container``; a recording that got no frame
    (``stream`` None) is removed.  Returns whether a file was left."""
    if stream is not None:
        container.mux(stream.encode(None))
    container.close()
    if stream is None:
        path.unlink(missing_ok=True)
    return stream is not None
