"""The aiohttp application: routes, JSON errors, the page and its static files."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from web import controls, health, obstacles, rest, rtc
from web.state import STATE, ServerState

log = logging.getLogger("depthstream")
STATIC = Path(__file__).with_name("static")


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every error is ``{"error": ...}`` with its status; nothing escapes as a bare 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": exc.reason},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def build_app(state: ServerState) -> web.Application:
    app = web.Application(
        client_max_size=int(state.cfg.web.max_upload_mb * 1024 * 1024), middlewares=[json_errors]
    )
    app[STATE] = state
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_post("/offer", rtc.offer)
    app.router.add_post("/whep", rtc.whep)
    app.router.add_delete("/whep/{peer_id}", rtc.whep_delete)
    app.router.add_post("/api/depth", rest.depth)
    app.router.add_get("/api/settings", controls.get_settings)
    app.router.add_post("/api/settings", controls.post_settings)
    app.router.add_get("/ws/obstacles", obstacles.stream_obstacles)
    app.router.add_post("/api/calibration", obstacles.calibrate)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", health.metrics)
    return app
