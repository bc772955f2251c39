"""``GET /healthz`` (JSON, 503 when the pipeline is dead) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import time

from aiohttp import web

from stream.stabilizer import STATES
from stream.stats import AGE_BUCKETS_MS
from web.state import STATE, ServerState


async def healthz(request: web.Request) -> web.Response:
    state: ServerState = request.app[STATE]
    alive = not state.pipeline.done.is_set()
    return web.json_response(
        {
            "status": "ok" if alive else "dead",
            "source": state.pipeline.source.status.state,
            "uptime_s": round(time.monotonic() - state.started_at, 1),
            "frames_processed": state.pipeline.stats.frames_processed,
            "viewers": len(state.peers.connections),
            "outputs": state.pipeline.outputs(),
        },
        status=200 if alive else 503,
    )


COUNTERS = {
    "frames_captured": "Frames the source delivered.",
    "frames_processed": "Frames processed and handed to the outputs.",
    "frames_dropped": "Frames dropped so the output stays fresh (live sources).",
    "frames_corrupt": "Frames or packets the source could not decode.",
    "frames_failed": "Frames the model or the renderer failed on.",
    "reconnects": "Times a lost network camera came back.",
}


def _metric(
    lines: list[str], name: str, kind: str, doc: str, value: float, labels: str = ""
) -> None:
    lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name}{labels} {value}"]


OUTPUT_SERIES = {
    "connected": ("gauge", "1 while the output is connected to its server or broker."),
    "sent": ("counter", "Frames or readings the output sent."),
    "dropped": ("counter", "Frames or readings dropped while the output was busy or away."),
    "reconnects": ("counter", "Times the output's server or broker came back."),
}


def _output_metrics(lines: list[str], outputs: dict[str, dict]) -> None:
    for key, (kind, doc) in OUTPUT_SERIES.items():
        name = f"depthstream_output_{key}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{output="{out}"}} {int(s[key])}' for out, s in outputs.items()]


async def metrics(request: web.Request) -> web.Response:
    state: ServerState = request.app[STATE]
    pipeline, stats = state.pipeline, state.pipeline.stats
    summary = pipeline.summary()
    lines: list[str] = []
    _metric(
        lines,
        "depthstream_fps",
        "gauge",
        "Processed frames per second (recent).",
        round(stats.recent_fps, 3),
    )
    for key, doc in COUNTERS.items():
        _metric(lines, f"depthstream_{key}_total", "counter", doc, summary[key])
    _metric(
        lines,
        "depthstream_viewers",
        "gauge",
        "Connected WebRTC viewers.",
        len(state.peers.connections),
    )
    _metric(
        lines,
        "depthstream_video_packets_encoded_total",
        "counter",
        "VP8 packets encoded for viewers (once each, however many watch).",
        state.broadcast.encoded,
    )
    outputs = summary.get("outputs", {})
    if outputs:
        _output_metrics(lines, outputs)
    if pipeline.stabilizer is not None:
        lines += [
            "# HELP depthstream_stabilizer_frames_total Frames by how the stabilizer took them.",
            "# TYPE depthstream_stabilizer_frames_total counter",
        ]
        counts = summary.get("stabilizer", {})
        lines += [
            f'depthstream_stabilizer_frames_total{{state="{name}"}} {counts.get(name, 0)}'
            for name in STATES
        ]
    for name, key, doc in (
        ("inference", "inference_ms", "Model inference time per frame."),
        ("source_delay", "source_delay_ms", "How much later than the stream's timing frames came."),
    ):
        lines += [
            f"# HELP depthstream_{name}_seconds {doc}",
            f"# TYPE depthstream_{name}_seconds summary",
        ]
        for q, p in (("0.5", "p50"), ("0.95", "p95")):
            value = summary[key][p]
            lines.append(
                f'depthstream_{name}_seconds{{quantile="{q}"}} '
                f"{'NaN' if value is None else value / 1000}"
            )
    lines += [
        "# HELP depthstream_frame_age_seconds Capture-to-output age of each frame.",
        "# TYPE depthstream_frame_age_seconds histogram",
    ]
    for bound, count in zip(AGE_BUCKETS_MS, stats.age_buckets, strict=True):
        lines.append(f'depthstream_frame_age_seconds_bucket{{le="{bound / 1000}"}} {count}')
    lines += [
        f'depthstream_frame_age_seconds_bucket{{le="+Inf"}} {stats.frames_processed}',
        f"depthstream_frame_age_seconds_sum {stats.age_sum_ms / 1000}",
        f"depthstream_frame_age_seconds_count {stats.frames_processed}",
    ]
    return web.Response(
        body=("\n".join(lines) + "\n").encode(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
