"""WebRTC signalling: aiortc-style ``POST /offer`` (JSON) and WHEP (``application/sdp``)."""

from __future__ import annotations

from aiohttp import web
from aiortc.exceptions import OperationError

from web.peers import ViewersFull
from web.state import STATE


async def _answer(
    request: web.Request, sdp: str, kind: str, camera: str | None
) -> tuple[str, str, str]:
    state = request.app[STATE]
    state.offers.check(request)
    feed = state.feed(camera)
    if not isinstance(sdp, str) or kind != "offer" or not sdp.startswith("v=0"):
        raise web.HTTPBadRequest(reason="expected an SDP offer")
    try:
        peer_id, answer = await state.peers.answer(sdp, kind, feed.broadcast, feed.name)
    except ViewersFull as exc:
        raise web.HTTPServiceUnavailable(reason=str(exc), headers={"Retry-After": "5"}) from None
    except (ValueError, TypeError, KeyError, IndexError, AssertionError, OperationError) as exc:
        # aiortc's SDP parser asserts on lines it cannot read.
        reason = f"unusable SDP offer: {exc or type(exc).__name__}"
        raise web.HTTPBadRequest(reason=reason) from None
    return peer_id, answer.sdp, answer.type


async def offer(request: web.Request) -> web.Response:
    """``{"sdp", "type"}`` (and ``"camera"``) in, the answer in the same shape out (plus the
    peer id)."""
    try:
        body = await request.json()
        sdp, kind, camera = body["sdp"], body["type"], body.get("camera")
    except (KeyError, TypeError, ValueError, AttributeError):  # not JSON, not UTF-8, no object
        raise web.HTTPBadRequest(reason='body must be JSON {"sdp": ..., "type": "offer"}') from None
    if camera is not None and not isinstance(camera, str):
        raise web.HTTPBadRequest(reason="camera must be a camera's name")
    peer_id, sdp, kind = await _answer(request, sdp, kind, camera)
    return web.json_response({"sdp": sdp, "type": kind, "id": peer_id})


async def whep(request: web.Request) -> web.Response:
    """WHEP (``/whep`` or ``/whep/CAMERA``): an SDP offer body in, ``201`` with the answer and
    a ``Location`` to DELETE."""
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(reason="WHEP needs Content-Type: application/sdp")
    try:
        offer_sdp = await request.text()
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(reason="SDP must be UTF-8 text") from None
    camera = request.match_info.get("camera")
    peer_id, sdp, _ = await _answer(request, offer_sdp, "offer", camera)
    return web.Response(
        status=201,
        text=sdp,
        content_type="application/sdp",
        headers={"Location": f"/whep/{peer_id}"},
    )


async def whep_delete(request: web.Request) -> web.Response:
    if not await request.app[STATE].peers.close(request.match_info["peer_id"]):
        raise web.HTTPNotFound(reason="no such viewer")
    return web.Response(status=200)
