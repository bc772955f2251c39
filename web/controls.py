"""``/api/settings``: colour map, layout and colour-range freeze (``?camera=NAME``).

They change that camera's renderer, through its pipeline's thread-safe methods,
so they apply to all its viewers at once: inference and rendering run once
per frame however many viewers watch.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from aiohttp import web

from depthstream.stream.config import COLORMAPS, LAYOUTS
from depthstream.stream.render.colormap import Colorizer
from depthstream.stream.render.renderer import RenderSettings
from depthstream.web.limits import json_body
from depthstream.web.state import STATE


def _answer(settings: RenderSettings) -> web.Response:
    return web.json_response(
        {**dataclasses.asdict(settings), "colormaps": list(COLORMAPS), "layouts": list(LAYOUTS)}
    )


async def get_settings(request: web.Request) -> web.Response:
    feed = request.app[STATE].feed(request.query.get("camera"))
    return _answer(feed.pipeline.render_settings())


async def post_settings(request: web.Request) -> web.Response:
    body = await json_body(request, "a JSON object")
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    change = {key: body.get(key) for key in ("colormap", "layout", "freeze")}
    try:
        feed = request.app[STATE].feed(request.query.get("camera"))
        settings = feed.pipeline.configure_render(**change)
    except (ValueError, TypeError) as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    return _answer(settings)


async def legend(request: web.Request) -> web.Response:
    """``GET /api/legend?colormap=NAME``: the colour map as a 256x16 PNG strip, far (the low
    end) on the left, near on the right."""
    name = request.query.get("colormap", COLORMAPS[0])
    if name not in COLORMAPS:
        raise web.HTTPBadRequest(reason=f"colormap must be one of {', '.join(COLORMAPS)}")
    ramp = np.repeat(np.linspace(0, 1, 256, dtype=np.float32)[None, :], 16, axis=0)
    png = cv2.imencode(".png", Colorizer(name)(ramp))[1].tobytes()
    return web.Response(
        body=png, content_type="image/png", headers={"Cache-Control": "max-age=3600"}
    )
