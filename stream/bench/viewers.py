"""In-process WebRTC viewers for the serve benchmark (aiortc, loopback only).

Each viewer negotiates with ``POST /offer`` as the page does and counts the
video frames it decodes; nothing is displayed.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


async def _viewer(base: str, seconds: float) -> dict[str, float]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        track: asyncio.Future = asyncio.get_running_loop().create_future()
        pc.on("track", lambda t: track.done() or track.set_result(t))
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
            async with http.post(f"{base}/offer", json=body) as resp:
                resp.raise_for_status()
                answer = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        video = await asyncio.wait_for(track, 60)
        await asyncio.wait_for(video.recv(), 60)
        frames, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            await asyncio.wait_for(video.recv(), 10)
            frames += 1
        return {"frames": frames, "fps": round(frames / (time.monotonic() - start), 2)}
    finally:
        await pc.close()


async def _watch(base: str, count: int, seconds: float) -> list[dict[str, float]]:
    return list(await asyncio.gather(*(_viewer(base, seconds) for _ in range(count))))


def watch(base: str, count: int, seconds: float) -> list[dict[str, float]]:
    """Connect ``count`` viewers to the server at ``base`` and watch for ``seconds``."""
    # aioice leaves 127.0.0.1 out of its host candidates; the bench's server is on it.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    return asyncio.run(_watch(base, count, seconds))
