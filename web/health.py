"""``GET /healthz`` (JSON, 503 when the pipeline is dead) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time

from aiohttp import web

from depthstream.stream.stabilizer import STATES
from depthstream.stream.stats import AGE_BUCKETS_MS
from depthstream.web.state import STATE, Feed, ServerState


def _camera(feed: Feed, state: ServerState) -> dict:
    status = feed.pipeline.status()
    return {
        "status": "ok" if status.alive else "dead",
        "model": feed.settings.config.model.name,
        "source": status.source,
        "frames_processed": status.frames_processed,
        "fps": round(status.recent_fps, 2),
        "viewers": state.peers.viewers(feed.name),
        "outputs": feed.pipeline.outputs(),
    }


async def healthz(request: web.Request) -> web.Response:
    """The server's status (503 when a camera's pipeline is dead), the first camera's
    figures at the top level and every camera's under ``cameras``."""
    state: ServerState = request.app[STATE]
    cameras = {name: _camera(feed, state) for name, feed in state.feeds.items()}
    first = next(iter(cameras.values()))
    alive = all(c["status"] == "ok" for c in cameras.values())
    return web.json_response(
        {
            "status": "ok" if alive else "dead",
            "uptime_s": round(time.monotonic() - state.started_at, 1),
            "viewers": len(state.peers.connections),
            **{k: first[k] for k in ("source", "frames_processed", "outputs")},
            "cameras": cameras,
        },
        status=200 if alive else 503,
    )


async def cameras(request: web.Request) -> web.Response:
    """``GET /api/cameras``: each camera's name, state and URLs, in order."""
    state: ServerState = request.app[STATE]
    return web.json_response(
        [
            {"name": name, **_camera(feed, state), "whep": f"/whep/{name}"}
            for name, feed in state.feeds.items()
        ]
    )


COUNTERS = {
    "frames_captured": "Frames the source delivered.",
    "frames_processed": "Frames processed and handed to the outputs.",
    "frames_dropped": "Frames dropped so the output stays fresh (live sources).",
    "frames_corrupt": "Frames or packets the source could not decode.",
    "frames_failed": "Frames the model or the renderer failed on.",
    "reconnects": "Times a lost network camera came back.",
}


OUTPUT_SERIES = {
    "connected": ("gauge", "1 while the output is connected to its server or broker."),
    "sent": ("counter", "Frames or readings the output sent."),
    "dropped": ("counter", "Frames or readings dropped while the output was busy or away."),
    "reconnects": ("counter", "Times the output's server or broker came back."),
    "failures": ("counter", "Connection attempts to the output's server or broker that failed."),
}


class Exposition:
    """Prometheus text: each metric's HELP and TYPE once, then one sample per label set."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, doc: str, samples: list[tuple[str, object]]) -> None:
        self.lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{labels} {value}" for labels, value in samples]

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def _seconds(value: float | None) -> str:
    return "NaN" if value is None else str(value / 1000)


async def metrics(request: web.Request) -> web.Response:
    """Every per-camera series carries ``camera="NAME"``."""
    state: ServerState = request.app[STATE]
    feeds = list(state.feeds.values())
    summaries = {f.name: f.pipeline.summary() for f in feeds}
    out = Exposition()

    def per_camera(value) -> list[tuple[str, object]]:
        return [(f'{{camera="{f.name}"}}', value(f, summaries[f.name])) for f in feeds]

    out.add(
        "depthstream_fps",
        "gauge",
        "Processed frames per second (recent).",
        per_camera(lambda f, _s: round(f.pipeline.status().recent_fps, 3)),
    )
    for key, doc in COUNTERS.items():
        out.add(f"depthstream_{key}_total", "counter", doc, per_camera(lambda _f, s, k=key: s[k]))
    out.add(
        "depthstream_viewers",
        "gauge",
        "Connected WebRTC viewers.",
        per_camera(lambda f, _s: state.peers.viewers(f.name)),
    )
    out.add(
        "depthstream_video_packets_encoded_total",
        "counter",
        "VP8 packets encoded for viewers (once each, however many watch).",
        per_camera(lambda f, _s: f.broadcast.encoded),
    )
    for key, (kind, doc) in OUTPUT_SERIES.items():
        samples = [
            (f'{{camera="{f.name}",output="{name}"}}', int(status[key]))
            for f in feeds
            for name, status in summaries[f.name].get("outputs", {}).items()
        ]
        if samples:
            suffix = "_total" if kind == "counter" else ""
            out.add(f"depthstream_output_{key}{suffix}", kind, doc, samples)
    stabilized = [f for f in feeds if f.pipeline.stabilizing()]
    if stabilized:
        out.add(
            "depthstream_stabilizer_frames_total",
            "counter",
            "Frames by how the stabilizer took them.",
            [
                (
                    f'{{camera="{f.name}",state="{name}"}}',
                    summaries[f.name].get("stabilizer", {}).get(name, 0),
                )
                for f in stabilized
                for name in STATES
            ],
        )
    for name, key, doc in (
        ("inference", "inference_ms", "Model inference time per frame."),
        ("source_delay", "source_delay_ms", "How much later than the stream's timing frames came."),
    ):
        out.add(
            f"depthstream_{name}_seconds",
            "summary",
            doc,
            [
                (f'{{camera="{f.name}",quantile="{q}"}}', _seconds(summaries[f.name][key][p]))
                for f in feeds
                for q, p in (("0.5", "p50"), ("0.95", "p95"))
            ],
        )
    ages: list[tuple[str, object]] = []
    for f in feeds:
        stats, label = f.pipeline.stats(), f'camera="{f.name}"'
        for bound, count in zip(AGE_BUCKETS_MS, stats.age_buckets, strict=True):
            ages.append((f'_bucket{{{label},le="{bound / 1000}"}}', count))
        ages += [
            (f'_bucket{{{label},le="+Inf"}}', stats.frames_processed),
            (f"_sum{{{label}}}", stats.age_sum_ms / 1000),
            (f"_count{{{label}}}", stats.frames_processed),
        ]
    out.add(
        "depthstream_frame_age_seconds", "histogram", "Capture-to-output age of each frame.", ages
    )
    return web.Response(
        body=out.text(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
