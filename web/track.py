"""The depth video as an aiortc track: each ``recv`` returns the viewer's next shared packet."""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc import MediaStreamTrack

from depthstream.web.broadcast import Broadcast, Encoded


class DepthTrack(MediaStreamTrack):
    """One per viewer; ``on_frame`` gets the record of each frame sent (for the data channel)."""

    kind = "video"

    def __init__(self, broadcast: Broadcast, on_frame: Callable[[str], None]) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.on_frame = on_frame
        self._sent: Encoded | None = None
        broadcast.join()

    async def recv(self) -> av.Packet:
        self._sent = await self.broadcast.next_after(self._sent)
        self.on_frame(self._sent.record)
        return self._sent.packet

    def stop(self) -> None:
        if self.readyState == "live":
            self.broadcast.leave()
        super().stop()
