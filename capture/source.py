"""What every source is: the :class:`Source` protocol, the :class:`Frame` it yields and its
:class:`SourceStatus`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

RUNNING = "running"
RECONNECTING = "reconnecting"
ENDED = "ended"

# Frames carry monotonic times; records that a person or a robot logs want wall-clock ones.
_WALL_OFFSET = time.time() - time.monotonic()


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One decoded picture.

    ``rgb``: HxWx3 uint8.  ``seq``: 0-based count of frames the source produced.
    ``pts``: the source's own timestamp in seconds (``None`` if it has none).
    ``captured_at``: ``time.monotonic()`` when the frame left the decoder, the
    reference for frame-age measurements.  ``source_delay``: seconds this frame
    arrived later than the stream's most punctual recent frame (bursty delivery
    such as HLS segments; see :mod:`capture.pacing`), so its age since the scene
    is at least its age since arrival plus this.
    """

    rgb: np.ndarray
    seq: int
    pts: float | None
    captured_at: float
    source_delay: float = 0.0

    @property
    def wall_time(self) -> float:
        """``captured_at`` on the wall clock (seconds since the epoch)."""
        return self.captured_at + _WALL_OFFSET


class SourceStatus:
    """What a source is doing right now: changed by the source's own thread, read from any.

    ``state``: running / reconnecting / ended.  ``reconnects``: times a lost
    stream came back.  ``corrupt``: frames or packets that failed to decode and
    were skipped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = RUNNING
        self._reconnects = 0
        self._corrupt = 0

    @property
    def state(self) -> str:
        return self._state

    @property
    def reconnects(self) -> int:
        return self._reconnects

    @property
    def corrupt(self) -> int:
        return self._corrupt

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def count_reconnect(self) -> None:
        with self._lock:
            self._reconnects += 1

    def count_corrupt(self, frames: int = 1) -> None:
        with self._lock:
            self._corrupt += frames


@runtime_checkable
class Source(Protocol):
    """A stream of frames: a video file, a network camera or a webcam.

    One thread iterates it; :meth:`stop` may come from any other and ends the
    iteration soon after; :meth:`close` releases what the source holds once the
    iterating thread has finished.
    """

    @property
    def live(self) -> bool:
        """Whether frames arrive at the scene's pace, so a slow consumer must drop, not queue."""
        ...

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the frames; None while a network camera has not answered."""
        ...

    @property
    def fps(self) -> float:
        """The nominal frame rate."""
        ...

    @property
    def frame_count(self) -> int | None:
        """How many frames iteration will yield, when that is known in advance."""
        ...

    @property
    def status(self) -> SourceStatus: ...

    def __iter__(self) -> Iterator[Frame]: ...

    def stop(self) -> None:
        """End iteration soon (safe from any thread)."""
        ...

    def close(self) -> None:
        """Release the file, device or connection; call after iteration has ended."""
        ...
