"""Cameras taking turns on one model runtime.

Several pipelines share one estimator (one set of weights, one runtime using
every core).  A camera asks for a turn only once it holds a frame, and turns
are granted in the order they were asked for, so the camera that has waited
longest always goes next: with N cameras each waits at most N - 1 inferences,
and a camera with no frames (dead, reconnecting) costs the others nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Turns:
    """A first-come, first-served lock for the pipelines that share one runtime."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait until every earlier request has had its turn, then hold the runtime."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            self._cond.wait_for(lambda: not self._busy and self._waiting[0] is ticket)
            self._waiting.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
