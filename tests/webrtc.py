"""Test helpers for WebRTC on loopback only, and an aiortc viewer."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


def loopback_only(monkeypatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; offer it, and nothing else,
    so ICE never touches an address outside this machine."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@dataclass
class Viewer:
    """An aiortc receive-only peer with a data channel, as a browser page would be."""

    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    records: list[dict] = field(default_factory=list)
    track: asyncio.Future = field(default_factory=asyncio.Future)

    async def offer(self) -> str:
        self.pc.addTransceiver("video", direction="recvonly")
        channel = self.pc.createDataChannel("frames")
        channel.on("message", lambda m: self.records.append(json.loads(m)))
        self.pc.on("track", lambda t: self.track.done() or self.track.set_result(t))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def frames(self, count: int, timeout: float = 60.0) -> list:
        track = await asyncio.wait_for(self.track, timeout)
        return [await asyncio.wait_for(track.recv(), timeout) for _ in range(count)]

    async def close(self) -> None:
        await self.pc.close()
