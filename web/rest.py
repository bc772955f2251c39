"""``POST /api/depth``: one image in, its depth out (PNG heat map, JSON, .npy, or a PLY
point cloud when calibrated with a known lens).

Every bad input is a 4xx with a JSON error: empty, not an image, truncated,
too many pixels (as the decoder reads the size, before decoding), too large
(refused from the declared length, or as soon as the streamed body passes it).
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

import cv2
import numpy as np
from aiohttp import web

from depthstream.capture.errors import SourceError
from depthstream.capture.image import decode_image, image_dimensions
from depthstream.stream.scene import Scenes
from depthstream.web.limits import BODY_RATE, body_timeout, refuse_declared_size
from depthstream.web.state import STATE, Feed, ServerState

FORMATS = ("png", "json", "npy", "ply")


async def _upload(request: web.Request, limit: int) -> bytes:
    """The image bytes: multipart field ``image``, or the raw body; counted while they
    stream in (aiohttp stops at ``client_max_size``), and no slower than
    ``[web] min_body_rate``."""
    refuse_declared_size(request, limit)
    async with body_timeout(request, request.app[BODY_RATE]):
        if request.content_type != "multipart/form-data":
            return await request.read()
        try:
            form = await request.post()
        except web.HTTPException:
            raise
        except Exception as exc:  # no boundary, a broken part or part header
            raise web.HTTPBadRequest(reason=f"malformed multipart upload: {exc}") from None
    field = form.get("image")
    if not isinstance(field, web.FileField):
        raise web.HTTPBadRequest(reason="multipart upload needs a file field named 'image'")
    return field.file.read()


def _decode(data: bytes, limit: int) -> np.ndarray:
    """The upload as RGB, refused before decoding when the decoder would allocate more than
    ``limit`` pixels."""
    if not data:
        raise web.HTTPBadRequest(reason="empty upload")
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
    try:
        return decode_image(data, "upload")
    except SourceError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None


def _scenes(feed: Feed) -> Scenes:
    """The camera's lens and its live calibration (else its stored one), as a point cloud
    needs them, or a 409 saying which is missing."""
    cfg = feed.settings.config
    scenes = Scenes.of(cfg.camera, cfg.geometry, feed.pipeline.calibration() or cfg.calibration)
    if scenes.calibration is None:
        raise web.HTTPConflict(reason="format=ply needs metric depth: calibrate first")
    if not scenes.projector.known:
        raise web.HTTPConflict(reason="format=ply needs [camera] fx and fy, or hfov_deg")
    return scenes


def _answer(
    feed: Feed, data: bytes, max_pixels: int, fmt: str, scenes: Scenes | None
) -> web.Response:
    """Decode, infer with the camera's model, and encode the answer: off the event loop."""
    rgb = _decode(data, max_pixels)
    start = time.perf_counter()
    depth_map = feed.pipeline.estimate(rgb)
    inference_ms = (time.perf_counter() - start) * 1000.0
    if scenes is not None:
        scene = scenes.make(0, time.time(), rgb, depth_map.resized, scenes.calibration)
        return web.Response(body=scene.ply(), content_type="application/octet-stream")
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, depth_map.resized.astype(np.float32))
        return web.Response(body=buffer.getvalue(), content_type="application/octet-stream")
    view = feed.pipeline.render_still(rgb, depth_map)
    png = cv2.imencode(".png", view)[1].tobytes()
    if fmt == "png":
        return web.Response(body=png, content_type="image/png")
    return web.json_response(
        {
            "width": rgb.shape[1],
            "height": rgb.shape[0],
            "depth_min": float(depth_map.resized.min()),
            "depth_max": float(depth_map.resized.max()),
            "inference_ms": round(inference_ms, 2),
            "image_png_b64": base64.b64encode(png).decode("ascii"),
        }
    )


async def depth(request: web.Request) -> web.StreamResponse:
    """The upload slot is taken before the body is read, so uploads beyond the slots are
    refused at once; the body, the decoding and the model then run inside it."""
    state: ServerState = request.app[STATE]
    fmt = request.query.get("format", "png")
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(reason=f"format must be one of {', '.join(FORMATS)}")
    feed = state.feed(request.query.get("camera"))
    scenes = _scenes(feed) if fmt == "ply" else None
    w = state.cfg.web
    with state.uploads.hold():
        data = await _upload(request, w.max_upload_bytes)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _answer, feed, data, w.max_pixels, fmt, scenes)
