"""``/api/settings``: colour map, layout and colour-range freeze (``?camera=NAME``).

They change that camera's renderer, through its thread-safe ``configure``,
so they apply to all its viewers at once: inference and rendering run once
per frame however many viewers watch.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from stream.config import COLORMAPS, LAYOUTS
from stream.render.renderer import RenderSettings
from web.state import STATE


def _answer(settings: RenderSettings) -> web.Response:
    return web.json_response(
        {**dataclasses.asdict(settings), "colormaps": list(COLORMAPS), "layouts": list(LAYOUTS)}
    )


async def get_settings(request: web.Request) -> web.Response:
    feed = request.app[STATE].feed(request.query.get("camera"))
    return _answer(feed.pipeline.renderer.settings())


async def post_settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:  # not JSON, or not UTF-8
        raise web.HTTPBadRequest(reason="body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    change = {key: body.get(key) for key in ("colormap", "layout", "freeze")}
    try:
        feed = request.app[STATE].feed(request.query.get("camera"))
        settings = feed.pipeline.renderer.configure(**change)
    except (ValueError, TypeError) as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    return _answer(settings)
