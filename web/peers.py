"""Viewer peer connections: one :class:`DepthTrack` and an optional data channel each."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from stream.pipeline import Result
from web.hub import FrameHub
from web.track import DepthTrack

log = logging.getLogger("depthstream")


class Peers:
    """Creates answers for offers and forgets peers whose connection closed or failed."""

    def __init__(
        self, hub: FrameHub, ice_servers: list[str], record: Callable[[Result], dict[str, Any]]
    ) -> None:
        self.hub = hub
        self.ice_servers = ice_servers
        self.record = record
        self.connections: dict[str, RTCPeerConnection] = {}

    async def answer(self, sdp: str, kind: str) -> tuple[str, RTCSessionDescription]:
        """Answer ``sdp``; the depth track goes to the offer's video transceiver."""
        config = RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in self.ice_servers])
        pc = RTCPeerConnection(configuration=config)
        peer_id = uuid.uuid4().hex
        self.connections[peer_id] = pc
        channels = []

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            channels.append(channel)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("viewer %s: %s", peer_id[:8], pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(peer_id)

        def send_record(result: Result) -> None:
            for channel in channels:
                if channel.readyState == "open":
                    channel.send(json.dumps(self.record(result)))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
            pc.addTrack(DepthTrack(self.hub, send_record))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.close(peer_id)
            raise
        return peer_id, pc.localDescription

    async def close(self, peer_id: str) -> bool:
        pc = self.connections.pop(peer_id, None)
        if pc is None:
            return False
        await pc.close()
        return True

    async def close_all(self) -> None:
        for peer_id in list(self.connections):
            await self.close(peer_id)
