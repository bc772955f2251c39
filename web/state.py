"""What the web handlers share: config, the running pipeline and the viewers' objects.

Built once, before the server starts, and never changed afterwards: what
changes while it runs (settings, the calibration, the viewers) changes
through those objects' own methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from stream.config import Config
from stream.pipeline import Pipeline
from web.broadcast import Broadcast
from web.hub import FrameHub
from web.limits import RateLimit, Slots
from web.peers import Peers


@dataclass(frozen=True)
class ServerState:
    cfg: Config
    pipeline: Pipeline
    hub: FrameHub
    broadcast: Broadcast
    peers: Peers
    offers: RateLimit
    uploads: Slots
    websockets: Slots
    config_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)


STATE = web.AppKey("state", ServerState)
