"""``depthstream serve``: one pipeline, any number of browser viewers.

The pipeline's threads start with the app and stop with it; every viewer and
every REST call shares the one estimator, so inference runs once per frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from stream.pipeline import Result
from web.app import build_app
from web.broadcast import Broadcast
from web.encoder import Vp8Encoder
from web.hub import FrameHub
from web.loopback import use_loopback_candidates
from web.peers import Peers
from web.state import ServerState

log = logging.getLogger("depthstream")


def frame_record(state: ServerState) -> Callable[[Result], dict[str, Any]]:
    """The per-frame JSON a viewer's data channel receives."""
    offset = time.time() - time.monotonic()

    def record(result: Result) -> dict[str, Any]:
        normalizer = state.pipeline.renderer.normalizer
        return {
            "frame": result.frame.seq,
            "capture_time": round(result.frame.captured_at + offset, 4),
            "fps": round(state.pipeline.stats.recent_fps, 2),
            "inference_ms": round(result.inference_ms, 1),
            "age_ms": round(result.age_ms, 1),
            "near": normalizer.high,
            "far": normalizer.low,
            "source": state.pipeline.source.status.state,
            "obstacles": result.obstacles.to_dict() if result.obstacles else None,
        }

    return record


def create_app(state: ServerState) -> web.Application:
    app = build_app(state)

    async def start(_app: web.Application) -> None:
        web_cfg = state.cfg.web
        state.hub = FrameHub(asyncio.get_running_loop())
        state.broadcast = Broadcast(
            state.hub, Vp8Encoder(web_cfg.bitrate), web_cfg.keyframe_interval, frame_record(state)
        )
        if web_cfg.ice_loopback:
            use_loopback_candidates()
        state.peers = Peers(state.broadcast, web_cfg.ice_servers)
        state.pipeline.sinks.append(state.hub.publish)
        state.pipeline.start()

    async def stop(_app: web.Application) -> None:
        if state.peers is not None:
            await state.peers.close_all()
        if state.broadcast is not None:
            state.broadcast.close()
        await asyncio.get_running_loop().run_in_executor(None, state.pipeline.join)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


def serve(state: ServerState, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM; aiohttp turns both into a clean shutdown."""
    web.run_app(
        create_app(state),
        host=host,
        port=port,
        access_log=None,
        print=lambda _msg: log.info("serving on http://%s:%d/", host, port),
    )
