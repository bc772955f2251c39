"""Bounds that hold under a flood: offers per client address, slots for costly work, and
request bodies read only up to what a route can use."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiohttp import web

MAX_CLIENTS_TRACKED = 4096
# JSON and SDP bodies: a browser's offer is a few KB; settings and calibration far less.
SMALL_BODY = 64 * 1024
# Seconds any request body may take before ``[web] min_body_rate`` applies.
BODY_GRACE = 10.0
BODY_RATE = web.AppKey("body_rate", int)


def too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=limit + 1, reason=f"body over {limit} bytes"
    )


def refuse_declared_size(request: web.Request, limit: int) -> None:
    """413 at once when the declared Content-Length is over ``limit``, before any byte
    of the body is read."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


@asynccontextmanager
async def body_timeout(request: web.Request, min_rate: int):
    """Within: reading the body, which must keep up with ``min_rate`` bytes a second after
    :data:`BODY_GRACE` seconds (the deadline moves on as bytes arrive, so a long upload
    over a slow link is never cut, and a stalled one is within the grace); then 408."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(start + BODY_GRACE) as deadline:

            def extend() -> None:
                deadline.reschedule(start + BODY_GRACE + request.content.total_bytes / min_rate)
                tick[0] = loop.call_later(0.5, extend)

            tick = [loop.call_later(0.5, extend)]
            try:
                yield
            finally:
                tick[0].cancel()
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason="request body too slow") from None


async def read_body(request: web.Request, limit: int = SMALL_BODY) -> bytes:
    """The body, counted while it streams in: 413 as soon as it passes ``limit``, 408 when
    it comes slower than ``[web] min_body_rate``."""
    refuse_declared_size(request, limit)
    chunks, size = [], 0
    async with body_timeout(request, request.app[BODY_RATE]):
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: web.Request, what: str) -> Any:
    """The body as JSON (at most :data:`SMALL_BODY` bytes); 400 saying ``what`` is expected
    for anything else: not UTF-8, not JSON, or nested deeper than the parser goes."""
    data = await read_body(request)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise web.HTTPBadRequest(reason=f"body must be {what}") from None


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
