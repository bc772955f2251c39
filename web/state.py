"""What the web handlers share: config, the running pipeline, the estimator, the viewers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from stream.config import Config
from stream.estimator import DepthEstimator
from stream.pipeline import Pipeline
from stream.readout import ObstacleMeter
from stream.render import DepthRenderer
from web.broadcast import Broadcast
from web.hub import FrameHub
from web.peers import Peers


@dataclass
class ServerState:
    cfg: Config
    pipeline: Pipeline
    estimator: DepthEstimator
    still_renderer: Callable[[], DepthRenderer]
    meter: ObstacleMeter | None = None
    config_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    hub: FrameHub | None = None
    broadcast: Broadcast | None = None
    peers: Peers | None = None


STATE = web.AppKey("state", ServerState)
