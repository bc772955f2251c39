"""Bounds that hold under a flood: offers per client address, and slots for costly work."""

from __future__ import annotations

import time
from collections import OrderedDict
from contextlib import contextmanager

from aiohttp import web

MAX_CLIENTS_TRACKED = 4096


class RateLimit:
    """A token bucket per client address: ``burst`` at once, then ``per_minute``.

    Runs on the event loop only.  The oldest addresses are forgotten beyond
    :data:`MAX_CLIENTS_TRACKED`, so a flood of addresses cannot grow it.
    """

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > MAX_CLIENTS_TRACKED:
            self._buckets.popitem(last=False)
        return allowed

    def check(self, request: web.Request) -> None:
        """Raise 429 (with Retry-After) when ``request``'s address is over its rate."""
        if not self.allow(request.remote or "?"):
            raise web.HTTPTooManyRequests(
                reason="too many requests from this address", headers={"Retry-After": "5"}
            )


class Slots:
    """At most ``size`` holders at once; one more is refused with 503, never queued, so
    waiting work cannot pile up behind the live pipeline.  Event loop only."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.what = what
        self.taken = 0

    @contextmanager
    def hold(self):
        if self.taken >= self.size:
            raise web.HTTPServiceUnavailable(
                reason=f"too many {self.what} at once (limit {self.size})",
                headers={"Retry-After": "1"},
            )
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1
