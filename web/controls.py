"""``/api/settings``: colour map, layout and colour-range freeze.

They change the one shared renderer, so they apply to every viewer at once:
inference and rendering run once per frame however many viewers watch.
"""

from __future__ import annotations

import json

from aiohttp import web

from stream.colormap import COLORMAPS
from stream.config import LAYOUTS
from web.state import STATE


def _current(request: web.Request) -> dict:
    renderer = request.app[STATE].pipeline.renderer
    return {
        "colormap": renderer.colorizer.name,
        "layout": renderer.layout,
        "freeze": renderer.normalizer.frozen,
        "colormaps": list(COLORMAPS),
        "layouts": list(LAYOUTS),
    }


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(_current(request))


async def post_settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(reason="body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    renderer = request.app[STATE].pipeline.renderer
    colormap, layout, freeze = body.get("colormap"), body.get("layout"), body.get("freeze")
    if colormap is not None and colormap not in COLORMAPS:
        raise web.HTTPBadRequest(reason=f"colormap must be one of {', '.join(COLORMAPS)}")
    if layout is not None and layout not in LAYOUTS:
        raise web.HTTPBadRequest(reason=f"layout must be one of {', '.join(LAYOUTS)}")
    if freeze is not None and not isinstance(freeze, bool):
        raise web.HTTPBadRequest(reason="freeze must be true or false")
    if colormap is not None:
        renderer.colorizer.name = colormap
    if layout is not None:
        renderer.layout = layout
    if freeze is not None:
        renderer.normalizer.frozen = freeze
    return web.json_response(_current(request))
