"""Viewer peer connections: one :class:`DepthTrack` and an optional data channel each.

Every viewer is answered with VP8 only: the tracks hand out the packets of one
shared VP8 encoder (:mod:`web.broadcast`), and every browser decodes VP8.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from depthstream.web.broadcast import Broadcast
from depthstream.web.track import DepthTrack

log = logging.getLogger("depthstream")
VP8 = [
    codec
    for codec in RTCRtpSender.getCapabilities("video").codecs
    if codec.mimeType in ("video/VP8", "video/rtx")
]


def as_dtls_server(offer_sdp: str, answer: RTCSessionDescription) -> RTCSessionDescription:
    """``answer`` taking the DTLS server role (``a=setup:passive``) when the offer leaves
    the choice to us (``actpass``, what every browser and webrtcbin offer).

    As the DTLS client aiortc offers only ECDHE-ECDSA cipher suites, so a peer with an RSA
    certificate, such as GStreamer's webrtcbin (and so ``whepsrc``), fails the handshake
    with "no shared cipher".  As the server our ECDSA certificate picks the suite, which
    every WebRTC stack supports.  It can go once aiortc's client offers ECDHE-RSA too
    (aiortc pull requests #1392 and #1421).
    """
    if "a=setup:actpass" not in offer_sdp:
        return answer
    sdp = answer.sdp.replace("a=setup:active", "a=setup:passive")
    return RTCSessionDescription(sdp=sdp, type=answer.type)


class ViewersFull(Exception):
    """No room for another viewer."""


class Peers:
    """Creates answers for offers, on any camera's broadcast, and forgets peers whose
    connection closed or failed, or that did not connect within ``connect_timeout``.

    ``max_viewers`` caps the *connected* viewers of every camera, checked at the offer and
    again when a viewer connects.  Offers still connecting do not count toward it: they
    wait in a pool of ``max_connecting``, where a newer offer pushes out the oldest, so a
    flood of offers that never connect (from however many addresses) cannot hold the
    viewers' places, and ends ``connect_timeout`` after it stops at the latest.
    """

    def __init__(
        self,
        ice_servers: list[str],
        max_viewers: int = 16,
        connect_timeout: float = 10.0,
        max_connecting: int = 32,
    ) -> None:
        self.ice_servers = ice_servers
        self.max_viewers = max_viewers
        self.connect_timeout = connect_timeout
        self.max_connecting = max_connecting
        self.connections: dict[str, RTCPeerConnection] = {}
        self._watching: dict[str, str] = {}
        self._connected: set[str] = set()
        self._answered: OrderedDict[str, None] = OrderedDict()  # not connected, oldest first
        self._expiries: set[asyncio.Task] = set()

    def viewers(self, camera: str) -> int:
        """Viewers connected or connecting to ``camera``."""
        return sum(1 for name in self._watching.values() if name == camera)

    def connected(self) -> int:
        """Viewers connected, of every camera."""
        return len(self._connected)

    async def _make_room(self) -> None:
        """Room for one more offer: under the cap of connected viewers, and a connecting
        place, pushing out the oldest answered offer that has not connected when needed
        (never one still being answered: that one's own request would fail)."""
        if self.connected() >= self.max_viewers:
            raise ViewersFull(f"{self.max_viewers} viewers already")
        while len(self.connections) - self.connected() >= self.max_connecting:
            if not self._answered:
                raise ViewersFull(f"{self.max_connecting} viewers connecting already")
            oldest = next(iter(self._answered))
            log.info("viewer %s: pushed out by a newer offer before connecting", oldest[:8])
            await self.close(oldest)

    async def _on_connected(self, peer_id: str) -> None:
        self._answered.pop(peer_id, None)
        self._connected.add(peer_id)
        if self.connected() > self.max_viewers:
            log.info("viewer %s: connected past the cap of %d", peer_id[:8], self.max_viewers)
            await self.close(peer_id)

    async def answer(
        self, sdp: str, kind: str, broadcast: Broadcast, camera: str = "main"
    ) -> tuple[str, RTCSessionDescription]:
        """Answer ``sdp`` with ``camera``'s ``broadcast`` on the offer's video transceiver.
        Raises :class:`ViewersFull` when ``max_viewers`` are connected."""
        await self._make_room()
        config = RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in self.ice_servers])
        pc = RTCPeerConnection(configuration=config)
        peer_id = uuid.uuid4().hex
        self.connections[peer_id] = pc
        self._watching[peer_id] = camera
        channels = []

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            channels.append(channel)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("viewer %s: %s", peer_id[:8], pc.connectionState)
            if pc.connectionState == "connected":
                await self._on_connected(peer_id)
            elif pc.connectionState in ("failed", "closed"):
                await self.close(peer_id)

        def send_record(record: str) -> None:
            for channel in channels:
                if channel.readyState == "open":
                    channel.send(record)

        try:
            sender = pc.addTrack(DepthTrack(broadcast, send_record))
            for transceiver in pc.getTransceivers():
                if transceiver.sender is sender:
                    transceiver.setCodecPreferences(VP8)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
            await pc.setLocalDescription(as_dtls_server(sdp, await pc.createAnswer()))
        except Exception:
            await self.close(peer_id)
            raise
        if peer_id in self.connections and peer_id not in self._connected:
            self._answered[peer_id] = None
        expiry = asyncio.ensure_future(self._expire(peer_id, pc))
        self._expiries.add(expiry)
        expiry.add_done_callback(self._expiries.discard)
        return peer_id, pc.localDescription

    async def _expire(self, peer_id: str, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self.connect_timeout)
        if self.connections.get(peer_id) is pc and pc.connectionState != "connected":
            log.info("viewer %s: did not connect in %g s", peer_id[:8], self.connect_timeout)
            await self.close(peer_id)

    async def close(self, peer_id: str) -> bool:
        pc = self.connections.pop(peer_id, None)
        self._watching.pop(peer_id, None)
        self._answered.pop(peer_id, None)
        self._connected.discard(peer_id)
        if pc is None:
            return False
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await pc.close()
        return True

    async def close_all(self) -> None:
        for expiry in list(self._expiries):
            expiry.cancel()
        for peer_id in list(self.connections):
            await self.close(peer_id)
