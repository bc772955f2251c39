"""The newest processed frame, handed from the pipeline's output thread to asyncio viewers.

Only the latest result is kept: a viewer that is slow simply skips to the
newest frame when it is ready, so no viewer can slow the pipeline or another
viewer, and nothing queues up.
"""

from __future__ import annotations

import asyncio

from depthstream.stream.pipeline import Result


class FrameHub:
    """A pipeline sink: latest-frame slot with an awaitable "something newer arrived".

    :meth:`bind` gives it the event loop the viewers run on, before the
    pipeline starts writing.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._latest: Result | None = None
        self._changed = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def latest(self) -> Result | None:
        return self._latest

    def write(self, result: Result) -> None:
        """Sink: called from the pipeline's output thread."""
        if self._loop is None:
            raise RuntimeError("the hub is not bound to an event loop")
        self._loop.call_soon_threadsafe(self._set, result)

    def close(self) -> None:
        """Nothing to release: viewers stop with their peer connections."""

    def _set(self, result: Result) -> None:
        self._latest = result
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, seen: Result | None) -> Result:
        """Wait for a result other than ``seen`` and return the newest one."""
        while self._latest is None or self._latest is seen:
            await self._changed.wait()
        return self._latest
