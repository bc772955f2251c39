"""``depthstream serve``: a pipeline per camera, any number of browser viewers.

The pipelines' threads start with the app and stop with it; every camera, viewer
and REST call shares the one estimator, so inference runs once per frame.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from depthstream.stream.config import Config, WebConfig
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Pipeline, Result
from depthstream.web import controls, health, obstacles, rest, rtc
from depthstream.web.broadcast import Broadcast
from depthstream.web.connections import ConnectionLimits, GuardedConnection
from depthstream.web.encoder import Vp8Encoder
from depthstream.web.guard import Guard, startup_warning
from depthstream.web.hub import FrameHub
from depthstream.web.limits import BODY_RATE, RateLimit, Slots
from depthstream.web.loopback import use_loopback_candidates
from depthstream.web.peers import Peers
from depthstream.web.state import STATE, Feed, ServerState

log = logging.getLogger("depthstream")
STATIC = Path(__file__).with_name("static")
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())
KEPT_HEADERS = frozenset({"allow", "www-authenticate", "retry-after"})
# The page runs under this policy: its own scripts and styles only, no inline code, never
# framed; pictures and video may come from blobs and data URLs the page makes itself.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


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
            headers={k: v for k, v in exc.headers.items() if k.lower() in KEPT_HEADERS},
        )
    except ConnectionError as exc:  # the client went away mid-request: nobody reads this
        log.info("client %s left during %s %s (%s)", request.remote, request.method,
                 request.path, exc.__class__.__name__)  # fmt: skip
        return web.json_response({"error": "connection lost"}, status=400)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer: the page's content policy, no sniffing, no framing, no referrer; answers
    other than the page and its files are never cached."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path != "/" and not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def static(request: web.Request) -> web.FileResponse:
    """The page's own files, and nothing else under that path."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(reason="no such file")
    return web.FileResponse(STATIC / name)


def _finite(value) -> float | None:
    number = float(value)
    return round(number, 3) if math.isfinite(number) else None


def frame_record(pipeline: Pipeline, camera: str) -> Callable[[Result], dict[str, Any]]:
    """The per-frame JSON a viewer's data channel receives."""

    def record(result: Result) -> dict[str, Any]:
        status = pipeline.status()
        reading = result.obstacles
        fit = reading.calibration if reading is not None else None
        return {
            "camera": camera,
            "model": pipeline.settings.config.model.name,
            "frame": result.frame.seq,
            "capture_time": round(result.frame.wall_time, 4),
            "fps": round(status.recent_fps, 2),
            "inference_ms": round(result.inference_ms, 1),
            "age_ms": round(result.age_ms, 1),
            "source_delay_ms": round(result.frame.source_delay * 1000, 1),
            "near": result.near,
            "far": result.far,
            "near_m": None if fit is None else _finite(fit.metres(result.near)),
            "far_m": None if fit is None else _finite(fit.metres(result.far)),
            "source": status.source,
            "stabilizer": result.stabilizer,
            "obstacles": result.obstacles.to_dict() if result.obstacles else None,
        }

    return record


def _feed(name: str, pipeline: Pipeline, cfg: Config) -> Feed:
    hub = FrameHub()
    pipeline.add_sink(hub)
    broadcast = Broadcast(
        hub, Vp8Encoder(cfg.web.bitrate), cfg.web.keyframe_interval, frame_record(pipeline, name)
    )
    return Feed(
        name=name, settings=pipeline.settings, pipeline=pipeline, hub=hub, broadcast=broadcast
    )


def create_app(
    cameras: Pipeline | dict[str, Pipeline], cfg: Config, config_path: Path | None = None
) -> web.Application:
    """The app serving ``cameras`` (pipelines by camera name; one pipeline is camera
    ``main``), not started yet: the app starts and joins them."""
    if isinstance(cameras, Pipeline):
        cameras = {"main": cameras}
    feeds = {name: _feed(name, pipeline, cfg) for name, pipeline in cameras.items()}
    w = cfg.web
    state = ServerState(
        cfg,
        feeds,
        Peers(w.ice_servers, w.max_viewers, w.connect_timeout, w.max_connecting),
        RateLimit(w.offers_per_minute, w.offer_burst),
        Slots(w.max_uploads, "uploads"),
        Slots(w.max_websockets, "WebSocket clients"),
        config_path,
    )
    app = web.Application(
        client_max_size=w.max_upload_bytes,
        middlewares=[json_errors, Guard.from_config(w).middleware()],
    )
    app[STATE] = state
    app[BODY_RATE] = w.min_body_rate
    app.on_response_prepare.append(secure_headers)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_post("/offer", rtc.offer)
    app.router.add_post("/whep", rtc.whep)
    app.router.add_post("/whep/{camera}", rtc.whep)
    app.router.add_delete("/whep/{peer_id}", rtc.whep_delete)
    app.router.add_get("/api/cameras", health.cameras)
    app.router.add_get("/api/legend", controls.legend)
    app.router.add_post("/api/depth", rest.depth)
    app.router.add_get("/api/settings", controls.get_settings)
    app.router.add_post("/api/settings", controls.post_settings)
    app.router.add_get("/ws/obstacles", obstacles.stream_obstacles)
    app.router.add_post("/api/calibration", obstacles.calibrate)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", health.metrics)

    async def start(_app: web.Application) -> None:
        if cfg.web.ice_loopback:
            use_loopback_candidates()
        for feed in feeds.values():
            feed.hub.bind(asyncio.get_running_loop())
            feed.pipeline.start()

    async def stop(_app: web.Application) -> None:
        await state.peers.close_all()
        for feed in feeds.values():
            feed.broadcast.close()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, feed.pipeline.join) for feed in feeds.values())
        )

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


def tls_context(web_cfg: WebConfig) -> ssl.SSLContext | None:
    """The HTTPS context for ``[web] tls_cert``/``tls_key``, or None for plain HTTP."""
    if not web_cfg.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(web_cfg.tls_cert, web_cfg.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"config: web.tls_cert/tls_key cannot be loaded: {exc}") from None
    return context


class ClientErrorLines(logging.Filter):
    """aiohttp logs a malformed request (a client's mistake, answered 400) with its
    traceback at error level; here it is one info line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "malformed request: %s", (str(error).splitlines()[0],)
            record.exc_info, record.exc_text = None, None
        return True


async def _listen(app: web.Application, cfg: Config, context: ssl.SSLContext | None) -> None:
    """Serve ``app`` behind the connection limits until SIGINT or SIGTERM, then shut down
    cleanly (viewers closed, pipelines joined)."""
    w = cfg.web
    logging.getLogger("aiohttp.server").addFilter(ClientErrorLines())
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=w.idle_timeout)
    await runner.setup()
    limits = ConnectionLimits(w.connections_per_address, w.head_timeout)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: GuardedConnection(runner.server(), limits), w.host, w.port, ssl=context
        )
    except BaseException:
        await runner.cleanup()
        raise
    log.info("serving on %s://%s:%d/", "https" if context else "http", w.host, w.port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await runner.cleanup()


def serve(cameras: dict[str, Pipeline], cfg: Config, config_path: Path | None) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly; OSError when the port cannot be
    bound."""
    context = tls_context(cfg.web)
    warning = startup_warning(cfg.web)
    if warning:
        log.warning("%s", warning)
    asyncio.run(_listen(create_app(cameras, cfg, config_path), cfg, context))
