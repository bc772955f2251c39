"""What the web handlers share: config, the cameras being served and the viewers' objects.

Built once, before the server starts, and never changed afterwards: what
changes while it runs (settings, the calibration, the viewers) changes
through those objects' own methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from depthstream.stream.config import CameraSettings, Config
from depthstream.stream.pipeline import Pipeline
from depthstream.web.broadcast import Broadcast
from depthstream.web.hub import FrameHub
from depthstream.web.limits import RateLimit, Slots
from depthstream.web.peers import Peers


@dataclass(frozen=True, kw_only=True)
class Feed:
    """One camera as the server serves it: its settings (the ones its pipeline was built
    with), its pipeline, its newest frame, its VP8 stream."""

    name: str
    settings: CameraSettings
    pipeline: Pipeline
    hub: FrameHub
    broadcast: Broadcast


@dataclass(frozen=True)
class ServerState:
    cfg: Config
    feeds: dict[str, Feed]
    peers: Peers
    offers: RateLimit
    uploads: Slots
    websockets: Slots
    config_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)

    def feed(self, name: str | None = None) -> Feed:
        """The camera called ``name`` (None: the first one), or a 404 naming the cameras."""
        if name is None:
            return next(iter(self.feeds.values()))
        if name not in self.feeds:
            raise web.HTTPNotFound(reason=f"no camera {name!r} (cameras: {', '.join(self.feeds)})")
        return self.feeds[name]


STATE = web.AppKey("state", ServerState)
