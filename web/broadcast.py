"""The depth video encoded once, however many viewers watch.

aiortc encodes each viewer's track on its own: three viewers would mean three
VP8 encoders on the same frames, on the cores the model needs.  aiortc also
sends packets that are already encoded, as they are.  So one encoder here
turns each new result into a packet, and every viewer's track hands out the
same packets.

A packet decodes only after the ones before it, back to a key frame, so the
latest-frame rule moves up to packets: a viewer gets the packet after the one
it sent last while that packet is among the last :data:`RING`.  A viewer with
none yet (it just joined), or one that fell further behind, starts again at
a key frame that is the newest packet: it asks for one and waits.  Key frames
also come every ``keyframe_interval`` seconds: a viewer's decoder may lose
packets on the network, which only aiortc's sender hears of, and it then
recovers by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import av

from depthstream.stream.pipeline import Result
from depthstream.web.encoder import TIME_BASE, Vp8Encoder
from depthstream.web.hub import FrameHub

log = logging.getLogger("depthstream")
RING = 8


@dataclass(frozen=True)
class Encoded:
    """One packet of the shared stream; ``seq`` numbers packets without gaps.

    ``record`` is the frame's JSON line for the viewers' data channels, made
    once with the packet.  The result itself is not kept: the ring would hold
    :data:`RING` frames' pictures and depth maps alive.
    """

    seq: int
    packet: av.Packet
    record: str


class Broadcast:
    """Encodes the hub's newest results while anyone watches; viewers ``join`` and ``leave``."""

    def __init__(
        self,
        hub: FrameHub,
        encoder: Vp8Encoder,
        keyframe_interval: float,
        describe: Callable[[Result], dict[str, Any]],
    ) -> None:
        self.hub = hub
        self.encoder = encoder
        self.keyframe_interval = keyframe_interval
        self.describe = describe
        self.encoded = 0
        self._ring: deque[Encoded] = deque(maxlen=RING)
        self._changed = asyncio.Event()
        self._viewers = 0
        self._task: asyncio.Task | None = None
        self._keyframe_due = 0.0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._clock_start = time.monotonic()
        self._pts = -1

    def join(self) -> None:
        self._viewers += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def leave(self) -> None:
        self._viewers -= 1
        if self._viewers == 0 and self._task is not None:
            self._task.cancel()
            self._task = None
            self._ring.clear()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._thread.shutdown(wait=False)

    def request_keyframe(self) -> None:
        self._keyframe_due = 0.0

    async def next_after(self, sent: Encoded | None) -> Encoded:
        """The packet to send after ``sent`` (None: this viewer has sent nothing yet)."""
        while (found := self._find(sent)) is None:
            await self._changed.wait()
        return found

    def _find(self, sent: Encoded | None) -> Encoded | None:
        ring = self._ring
        if sent is not None and ring and ring[0].seq <= sent.seq + 1:
            index = sent.seq + 1 - ring[0].seq
            return ring[index] if index < len(ring) else None
        newest = ring[-1] if ring else None
        if newest and newest.packet.is_keyframe and (sent is None or newest.seq > sent.seq):
            return newest
        self.request_keyframe()
        return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        seen: Result | None = None
        while True:
            result = seen = await self.hub.newer_than(seen)
            now = time.monotonic()
            keyframe = now >= self._keyframe_due
            if keyframe:
                self._keyframe_due = now + self.keyframe_interval
            self._pts = max(int((now - self._clock_start) / TIME_BASE), self._pts + 1)
            try:
                packets = await loop.run_in_executor(
                    self._thread, self.encoder.encode, result.view, self._pts, keyframe
                )
            except (av.FFmpegError, ValueError) as exc:
                log.warning("video encoder: %s; frame %d skipped", exc, result.frame.seq)
                self.request_keyframe()
                continue
            record = json.dumps(self.describe(result))
            for packet in packets:
                self._ring.append(Encoded(self.encoded, packet, record))
                self.encoded += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
