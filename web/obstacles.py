"""Obstacles for robots and the page: ``GET /ws/obstacles`` and ``POST /api/calibration``."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
from aiohttp import WSMsgType, web

from stream.calibration import fit, sample_points
from stream.config import write_section
from stream.errors import UserError
from stream.pipeline import Result
from web.state import STATE, ServerState


async def stream_obstacles(request: web.Request) -> web.WebSocketResponse:
    """One JSON reading per processed frame; a slow client just gets the newest."""
    state: ServerState = request.app[STATE]
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    closed = asyncio.ensure_future(_until_closed(ws))
    seen: Result | None = None
    try:
        while not ws.closed:
            waiter = asyncio.ensure_future(state.hub.newer_than(seen))
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
    """``{"points": [[x, y, metres], ...]}`` in image pixels of the current frame: fit on
    the newest depth map, apply it at once, and save it to the config file."""
    state: ServerState = request.app[STATE]
    try:
        points = [(float(x), float(y), float(m)) for x, y, m in (await request.json())["points"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise web.HTTPBadRequest(reason='body must be {"points": [[x, y, metres], ...]}') from None
    latest = state.pipeline.latest
    if latest is None or state.meter is None:
        raise web.HTTPServiceUnavailable(reason="no frame processed yet")
    try:
        values = sample_points(
            latest.depth.depth, [(x, y) for x, y, _ in points], state.cfg.calibration.radius
        )
        result = fit(values, np.array([m for _, _, m in points]))
    except UserError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    state.meter.calibrator.current = result
    state.meter.calibrator.points = points
    section = dataclasses.replace(
        state.cfg.calibration,
        points=[list(p) for p in points],
        scale=result.scale,
        shift=result.shift,
        rms_error_m=round(result.rms_error_m, 4),
    )
    state.cfg.calibration = section
    saved = None
    if state.config_path is not None:
        try:
            write_section(state.config_path, "calibration", section)
            saved = str(state.config_path)
        except OSError:
            saved = None
    return web.json_response(
        {
            "scale": result.scale,
            "shift": result.shift,
            "rms_error_m": result.rms_error_m,
            "used": result.used,
            "rejected": result.rejected,
            "saved_to": saved,
        }
    )
