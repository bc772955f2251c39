"""The depth video as an aiortc track: each ``recv`` returns the newest rendered frame."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

import av
from aiortc import MediaStreamTrack

from stream.pipeline import Result
from web.hub import FrameHub

CLOCK = 90_000


class DepthTrack(MediaStreamTrack):
    """One per viewer; ``on_frame`` is told which result went out (for the data channel)."""

    kind = "video"

    def __init__(self, hub: FrameHub, on_frame: Callable[[Result], None]) -> None:
        super().__init__()
        self.hub = hub
        self.on_frame = on_frame
        self._sent: Result | None = None
        self._start: float | None = None
        self._pts = -1

    async def recv(self) -> av.VideoFrame:
        result = await self.hub.newer_than(self._sent)
        self._sent = result
        now = time.monotonic()
        self._start = now if self._start is None else self._start
        frame = av.VideoFrame.from_ndarray(result.view, format="bgr24")
        self._pts = max(int((now - self._start) * CLOCK), self._pts + 1)
        frame.pts, frame.time_base = self._pts, Fraction(1, CLOCK)
        self.on_frame(result)
        return frame
