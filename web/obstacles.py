"""Obstacles for robots and the page: ``GET /ws/obstacles`` and ``POST /api/calibration``."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import WSMsgType, web

from depthstream.stream import calibration
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Result
from depthstream.web.hub import FrameHub
from depthstream.web.limits import json_body
from depthstream.web.state import STATE, ServerState

log = logging.getLogger("depthstream")


async def stream_obstacles(request: web.Request) -> web.WebSocketResponse:
    """One JSON reading per processed frame of ``?camera=NAME`` (default: the first camera);
    a slow client just gets the newest."""
    state: ServerState = request.app[STATE]
    hub = state.feed(request.query.get("camera")).hub
    with state.websockets.hold():
        return await _serve_obstacles(request, hub)


async def _serve_obstacles(request: web.Request, hub: FrameHub) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    closed = asyncio.ensure_future(_until_closed(ws))
    seen: Result | None = None
    try:
        while not ws.closed:
            waiter = asyncio.ensure_future(hub.newer_than(seen))
            done, _ = await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                break
            seen = waiter.result()
            if seen.obstacles is not None:
                await ws.send_str(json.dumps(seen.obstacles.to_dict()))
    except ConnectionResetError:
        pass
    finally:
        closed.cancel()
    return ws


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def calibrate(request: web.Request) -> web.Response:
    """``{"points": [[x, y, metres], ...]}`` in image pixels of the current frame (of
    ``"camera"``, default the first): fit on the newest depth map, apply it at once, and
    save it to the config file: into the camera's ``[[cameras]]`` entry when it has one,
    else into ``[calibration]`` when it is the only camera."""
    state: ServerState = request.app[STATE]
    expected = '{"points": [[x, y, metres], ...]}'
    body = await json_body(request, expected)
    try:
        points = [(float(x), float(y), float(m)) for x, y, m in body["points"]]
        camera = body.get("camera")
    except (KeyError, TypeError, ValueError, AttributeError):  # not an object, not numbers
        raise web.HTTPBadRequest(reason=f"body must be {expected}") from None
    feed = state.feed(camera if isinstance(camera, str) else None)
    latest = feed.hub.latest
    if latest is None:
        raise web.HTTPServiceUnavailable(reason="no frame processed yet")
    section = feed.settings.config.calibration
    radius = section.radius
    try:
        depth = latest.depth
        result = calibration.calibrate([depth.resized], points, radius, depth.metric)
    except UserError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    anchor = feed.pipeline.calibrate(result, points)
    entry = next((e for e in state.cfg.cameras if e.name == feed.name), None)
    saved = None
    camera = feed.name if entry else None
    if state.config_path is not None and (camera or len(state.feeds) == 1):
        try:
            calibration.save(state.config_path, section, points, radius, result, anchor, camera)
            saved = str(state.config_path)
        except UserError as exc:
            log.warning("calibration applied but not saved: %s", exc)
    return web.json_response(
        {
            "scale": result.scale,
            "shift": result.shift,
            "rms_error_m": result.rms_error_m,
            "used": result.used,
            "rejected": result.rejected,
            # A metric model's: measured over its own distances, and its own rms error.
            "model_factor": result.model_factor,
            "model_rms_error_m": result.model_rms_m,
            "saved_to": saved,
        }
    )
