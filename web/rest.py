"""``POST /api/depth``: one image in, its depth out (PNG heat map, JSON, .npy, or a PLY
point cloud when calibrated with a known lens).

Every bad input is a 4xx with a JSON error: empty, not an image, truncated,
too many pixels (checked from the header before decoding), too large.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

import cv2
import numpy as np
from aiohttp import web

from capture.errors import SourceError
from capture.image import decode_image, image_dimensions
from stream.assembly import renderer_for
from stream.calibration import stored_fit
from stream.geometry import Projector
from stream.scene import Scenes
from web.state import STATE, ServerState

FORMATS = ("png", "json", "npy", "ply")


async def _upload(request: web.Request) -> bytes:
    """The image bytes: multipart field ``image``, or the raw body."""
    if request.content_type == "multipart/form-data":
        try:
            form = await request.post()
        except ValueError as exc:  # no boundary, a broken part
            raise web.HTTPBadRequest(reason=f"malformed multipart upload: {exc}") from None
        field = form.get("image")
        if field is None or isinstance(field, str):
            raise web.HTTPBadRequest(reason="multipart upload needs a file field named 'image'")
        return field.file.read()
    return await request.read()


def _check_pixels(data: bytes, limit: int) -> None:
    size = image_dimensions(data)
    if size is None:
        if data[:2] == b"\xff\xd8" or data[:4] == b"\x89PNG":
            raise web.HTTPBadRequest(reason="image header is damaged")
        raise web.HTTPUnsupportedMediaType(reason="send a PNG or JPEG image")
    if size[0] * size[1] > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=size[0] * size[1],
            reason=f"image has {size[0]}x{size[1]} pixels; the limit is {limit}",
        )


def _scenes(state: ServerState, request: web.Request) -> Scenes:
    """The lens and the live calibration a point cloud needs, or a 409 saying which is missing."""
    latest = state.feed(request.query.get("camera")).hub.latest
    reading = latest.obstacles if latest is not None else None
    live = reading.calibration if reading is not None else None
    fit = live or stored_fit(state.cfg.calibration)
    scenes = Scenes(Projector(state.cfg.camera, state.cfg.geometry), fit)
    if scenes.calibration is None:
        raise web.HTTPConflict(reason="format=ply needs metric depth: calibrate first")
    if not scenes.projector.known:
        raise web.HTTPConflict(reason="format=ply needs [camera] fx and fy, or hfov_deg")
    return scenes


async def depth(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE]
    fmt = request.query.get("format", "png")
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(reason=f"format must be one of {', '.join(FORMATS)}")
    scenes = _scenes(state, request) if fmt == "ply" else None
    data = await _upload(request)
    if not data:
        raise web.HTTPBadRequest(reason="empty upload")
    _check_pixels(data, state.cfg.web.max_pixels)
    try:
        rgb = decode_image(data, "upload")
    except SourceError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    loop = asyncio.get_running_loop()
    estimator = state.pipeline.estimator
    with state.uploads.hold():
        start = time.perf_counter()
        depth_map = await loop.run_in_executor(None, estimator, rgb)
    inference_ms = (time.perf_counter() - start) * 1000.0
    if scenes is not None:
        scene = scenes.make(0, time.time(), rgb, depth_map.depth, scenes.calibration)
        return web.Response(body=scene.ply(), content_type="application/octet-stream")
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, depth_map.depth.astype(np.float32))
        return web.Response(body=buffer.getvalue(), content_type="application/octet-stream")
    # A renderer of its own: a still must not move the live stream's colour range.
    view = renderer_for(state.cfg, estimator).render(rgb, depth_map).image
    png = cv2.imencode(".png", view)[1].tobytes()
    if fmt == "png":
        return web.Response(body=png, content_type="image/png")
    return web.json_response(
        {
            "width": rgb.shape[1],
            "height": rgb.shape[0],
            "depth_min": float(depth_map.depth.min()),
            "depth_max": float(depth_map.depth.max()),
            "inference_ms": round(inference_ms, 2),
            "image_png_b64": base64.b64encode(png).decode("ascii"),
        }
    )
