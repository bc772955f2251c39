"""The newest processed frame, handed from the inference thread to asyncio viewers.

Only the latest result is kept: a viewer that is slow simply skips to the
newest frame when it is ready, so no viewer can slow the pipeline or another
viewer, and nothing queues up.
"""

from __future__ import annotations

import asyncio

from stream.pipeline import Result


class FrameHub:
    """Latest-frame slot with an awaitable "something newer arrived"."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.latest: Result | None = None
        self._changed = asyncio.Event()

    def publish(self, result: Result) -> None:
        """Pipeline sink; called from the inference thread."""
        self._loop.call_soon_threadsafe(self._set, result)

    def _set(self, result: Result) -> None:
        self.latest = result
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, seen: Result | None) -> Result:
        """Wait for a result other than ``seen`` and return the newest one."""
        while self.latest is None or self.latest is seen:
            await self._changed.wait()
        return self.latest
