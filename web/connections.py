"""Connections before HTTP: at most ``per_address`` open at once from one address, and a
first request head within ``head_timeout`` of connecting, so clients that open
connections and send nothing, or dribble their headers, cannot hold the server's sockets.

aiohttp bounds an idle kept-alive connection (its keep-alive timeout) but restarts that
clock on every byte, and has no bound on how long a request head may take.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

log = logging.getLogger("depthstream")
HEAD_END = b"\r\n\r\n"


class ConnectionLimits:
    """Open connections per address (event loop only)."""

    def __init__(self, per_address: int, head_timeout: float) -> None:
        self.per_address = per_address
        self.head_timeout = head_timeout
        self._open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        if self._open[address] >= self.per_address:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


class GuardedConnection(asyncio.Protocol):
    """aiohttp's request handler (``inner``) behind :class:`ConnectionLimits`; every other
    event passes straight through."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if not self.limits.admit(address):
            log.info(
                "connection from %s refused: %d open already", address, self.limits.per_address
            )
            transport.abort()
            return
        self.address = address
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.head_timeout, self._too_slow, transport)
        self.inner.connection_made(transport)

    def _too_slow(self, transport: asyncio.BaseTransport) -> None:
        seconds = self.limits.head_timeout
        log.info("connection from %s closed: no request within %g s", self.address, seconds)
        transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if HEAD_END in seen:
                self._timer.cancel()
                self._timer = None
            self._tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self.limits.release(self.address)
        self.inner.connection_lost(exc)
