"""Who may talk to the server: the Host it is reached by, the Origin of state-changing
requests, JSON content types, and the access token.

A web page the user opens can send simple cross-origin POSTs (``text/plain``,
no preflight), open WebSockets to any server, and, through DNS rebinding, reach
a server under a name the attacker controls.  So state-changing requests and
WebSocket upgrades must be same-origin, JSON
endpoints must say ``application/json`` (which a cross-origin page cannot
send without a preflight the server never answers), and the Host header must
be a name the server is known by.  With ``[web] token`` set, everything but
``/healthz`` also needs the token: ``Authorization: Bearer`` for programs, a
``?token=`` on the page's URL that becomes an HttpOnly SameSite=Strict cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from depthstream.stream.config import WebConfig

COOKIE = "depthstream_token"
CHANGES_STATE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_ONLY = frozenset({"/api/settings", "/api/calibration", "/offer"})
OPEN_PATHS = frozenset({"/healthz"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def token_of(web_cfg: WebConfig) -> str:
    """The access token: ``[web] token``, else ``$DEPTHSTREAM_TOKEN``, else none ("")."""
    return web_cfg.token or os.environ.get("DEPTHSTREAM_TOKEN", "")


def startup_warning(web_cfg: WebConfig) -> str | None:
    """The line ``serve`` prints when it is reachable from the network without a token."""
    if is_loopback(web_cfg.host) or token_of(web_cfg):
        return None
    return (
        f"WARNING: serving on {web_cfg.host} without an access token: anyone on the network "
        "can watch and change settings; set [web] token or DEPTHSTREAM_TOKEN"
    )


def _upgrades(request: web.Request) -> bool:
    """A WebSocket (or other protocol) upgrade: a GET that opens a live channel, which a
    page of another site may try as freely as a simple POST."""
    return "upgrade" in request.headers.get("Connection", "").lower()


def _host_name(header: str) -> str:
    """The name part of a Host header (``[::1]:8080`` -> ``::1``), lower-cased."""
    name = urlsplit(f"//{header}").hostname
    return (name or "").lower()


@dataclass(frozen=True)
class Guard:
    """The checks, built once from ``[web]``."""

    bound: str
    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    token: str

    @classmethod
    def from_config(cls, web_cfg: WebConfig) -> Guard:
        return cls(
            web_cfg.host.lower(),
            frozenset(h.lower() for h in web_cfg.allowed_hosts),
            frozenset(o.lower().rstrip("/") for o in web_cfg.allowed_origins),
            token_of(web_cfg),
        )

    def host_allowed(self, header: str) -> bool:
        """Loopback names, the bound address and listed names; bound to every address (or
        any non-loopback one), also any IP literal: DNS rebinding needs a name."""
        name = _host_name(header)
        if not name:
            return False
        if name in self.allowed_hosts or name == self.bound or is_loopback(name):
            return True
        return not is_loopback(self.bound) and _is_ip(name)

    def origin_allowed(self, origin: str, request: web.Request) -> bool:
        own = f"{request.scheme}://{request.host}".lower()
        return origin.lower().rstrip("/") in self.allowed_origins | {own}

    def token_given(self, request: web.Request) -> bool:
        """Whether the header, cookie or query carries the token; compared as bytes, since
        a client may send any characters."""
        offered = request.headers.get("Authorization", "")
        candidates = [
            offered[7:] if offered.startswith("Bearer ") else "",
            request.cookies.get(COOKIE, ""),
            request.query.get("token", ""),
        ]
        token = self.token.encode()
        return any(
            c and hmac.compare_digest(c.encode("utf-8", "surrogateescape"), token)
            for c in candidates
        )

    def refusal(self, request: web.Request) -> web.HTTPException | None:
        """Why ``request`` is refused, or None."""
        if not self.host_allowed(request.headers.get("Host", "")):
            return web.HTTPForbidden(reason="unknown Host header (add it to [web] allowed_hosts)")
        if request.method in CHANGES_STATE or _upgrades(request):
            origin = request.headers.get("Origin")
            if origin is not None and not self.origin_allowed(origin, request):
                return web.HTTPForbidden(reason="cross-origin request refused")
        json_only = request.method in CHANGES_STATE and request.path in JSON_ONLY
        if json_only and request.content_type != "application/json":
            return web.HTTPUnsupportedMediaType(reason="Content-Type must be application/json")
        if self.token and request.path not in OPEN_PATHS and not self.token_given(request):
            return web.HTTPUnauthorized(
                reason="access token required", headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    def middleware(self):
        @web.middleware
        async def guard(request: web.Request, handler) -> web.StreamResponse:
            refused = self.refusal(request)
            if refused is not None:
                raise refused
            response = await handler(request)
            if self.token and request.query.get("token") and request.path == "/":
                response.set_cookie(
                    COOKIE, self.token, httponly=True, samesite="Strict", secure=request.secure
                )
            return response

        return guard
