"""The bounded hand-over between the capture and inference threads.

Live sources must never make the picture old: when the queue is full the
oldest frame is dropped (and counted) so the newest always gets through.
Offline sources must never lose a frame: ``put`` waits for room instead.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """A bounded FIFO with a drop-oldest (live) or wait (offline) policy and a close flag."""

    def __init__(self, maxsize: int = 1, drop_oldest: bool = True) -> None:
        self.maxsize = max(maxsize, 1)
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self.put_count = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; False if closed (or, offline, still full after ``timeout``)."""
        with self._cond:
            if not self.drop_oldest and not self._cond.wait_for(
                lambda: self._closed or len(self._items) < self.maxsize, timeout
            ):
                return False
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None when closed and empty (or on timeout)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def newest_or(self, item: T) -> T:
        """The newest queued item in place of ``item`` (which is dropped, with any older ones,
        and counted), or ``item`` when nothing newer waits."""
        with self._cond:
            if not self._items:
                return item
            self.dropped += len(self._items)
            newest = self._items.pop()
            self._items.clear()
            self._cond.notify_all()
            return newest

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """No more puts; getters drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
