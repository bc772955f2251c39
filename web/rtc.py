"""WebRTC signalling: aiortc-style ``POST /offer`` (JSON) and WHEP (``application/sdp``)."""

from __future__ import annotations

from aiohttp import web

from depthstream.web.limits import SMALL_BODY, json_body, read_body, too_large
from depthstream.web.peers import ViewersFull
from depthstream.web.state import STATE

# Media sections an offer may have: a viewer uses video, perhaps audio, a data channel.
MAX_MEDIA = 4


def check_offer(sdp: object, kind: object) -> str:
    """``sdp`` if it is an SDP offer a viewer could send: text, at most
    :data:`~web.limits.SMALL_BODY` bytes and :data:`MAX_MEDIA` media sections (a viewer
    uses video, perhaps audio, and a data channel).  Refused before aiortc parses it, so
    no offer can hold the event loop."""
    if not isinstance(sdp, str) or kind != "offer" or not sdp.startswith("v=0"):
        raise web.HTTPBadRequest(reason="expected an SDP offer")
    if len(sdp) > SMALL_BODY:
        raise too_large(SMALL_BODY)
    if sdp.count("\nm=") > MAX_MEDIA:
        raise web.HTTPBadRequest(reason=f"SDP offer has more than {MAX_MEDIA} media sections")
    return sdp


async def _answer(
    request: web.Request, sdp: object, kind: object, camera: str | None
) -> tuple[str, str, str]:
    state = request.app[STATE]
    state.offers.check(request)
    feed = state.feed(camera)
    offer_sdp = check_offer(sdp, kind)
    try:
        peer_id, answer = await state.peers.answer(offer_sdp, "offer", feed.broadcast, feed.name)
    except ViewersFull as exc:
        raise web.HTTPServiceUnavailable(reason=str(exc), headers={"Retry-After": "5"}) from None
    except Exception as exc:  # aiortc asserts and fails in many ways on SDP it cannot use
        reason = f"unusable SDP offer: {exc or type(exc).__name__}"
        raise web.HTTPBadRequest(reason=reason) from None
    return peer_id, answer.sdp, answer.type


async def offer(request: web.Request) -> web.Response:
    """``{"sdp", "type"}`` (and ``"camera"``) in, the answer in the same shape out (plus the
    peer id)."""
    expected = '{"sdp": ..., "type": "offer"}'
    body = await json_body(request, f"JSON {expected}")
    if not isinstance(body, dict) or "sdp" not in body or "type" not in body:
        raise web.HTTPBadRequest(reason=f"body must be JSON {expected}")
    camera = body.get("camera")
    if camera is not None and not isinstance(camera, str):
        raise web.HTTPBadRequest(reason="camera must be a camera's name")
    peer_id, sdp, kind = await _answer(request, body["sdp"], body["type"], camera)
    return web.json_response({"sdp": sdp, "type": kind, "id": peer_id})


async def whep(request: web.Request) -> web.Response:
    """WHEP (``/whep`` or ``/whep/CAMERA``): an SDP offer body in, ``201`` with the answer and
    a ``Location`` to DELETE."""
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(reason="WHEP needs Content-Type: application/sdp")
    try:
        offer_sdp = (await read_body(request)).decode("utf-8")
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
