"""Several cameras: one ``serve`` with N cameras against N ``serve`` processes of one each.

Every camera plays the same clip live (at its own pace, as a camera would);
nobody watches, so what is measured is capture, the shared model and the
rendering and encoding every camera does for its viewers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from depthstream.stream.bench.pipeline_bench import (
    Launch,
    cli,
    finish,
    free_port,
    spawn,
    wait_healthy,
)


def _serve(
    clip: Path, n: int, launch: Launch, cache: Path, work: Path, tag: str
) -> tuple[subprocess.Popen, float, Path, Path, str]:
    port = free_port()
    config = work / f"{tag}.toml"
    config.write_text(f'[web]\nhost = "127.0.0.1"\nport = {port}\n')
    stats = work / f"{tag}.json"
    cameras = [a for i in range(n) for a in ("--camera", f"cam{i + 1}={clip}")]
    args = ["serve", *cameras, "--config", str(config), "--stats-json", str(stats)]
    log = work / f"{tag}.log"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc, spawned = spawn(cli(*args, *launch.flags()), env, log)
    return proc, spawned, stats, log, f"http://127.0.0.1:{port}"


def _run_all(
    clip: Path, counts: list[int], launch: Launch, cache: Path, work: Path, seconds: float, tag: str
) -> list[dict[str, Any]]:
    """Start one ``serve`` per entry of ``counts`` (cameras each), measure them together."""
    procs = [_serve(clip, n, launch, cache, work, f"{tag}-{i}") for i, n in enumerate(counts)]
    try:
        for proc, _, _, _, base in procs:
            wait_healthy(base, proc)
        time.sleep(seconds)
    finally:
        for proc, *_ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    return [finish(proc, spawned, stats, log) for proc, spawned, stats, log, _ in procs]


def _cameras(result: dict[str, Any]) -> list[dict[str, Any]]:
    summaries = result.get("cameras") or {"cam1": result}
    return [
        {
            "fps": s["fps"],
            "age_p50_ms": s["frame_age_ms"]["p50"],
            "age_p95_ms": s["frame_age_ms"]["p95"],
            "inference_p50_ms": s["inference_ms"]["p50"],
        }
        for s in summaries.values()
    ]


def _peak_rss(result: dict[str, Any]) -> float:
    """The process's peak RSS (each camera's summary repeats it)."""
    if "cameras" in result:
        return max(s["peak_rss_mb"] for s in result["cameras"].values())
    return result["peak_rss_mb"]


def _row(results: list[dict[str, Any]]) -> dict[str, Any]:
    cameras = [c for r in results for c in _cameras(r)]
    return {
        "cameras": cameras,
        "total_fps": round(sum(c["fps"] for c in cameras), 2),
        "peak_rss_mb": round(sum(_peak_rss(r) for r in results), 1),
        "processes": len(results),
    }


def camera_runs(
    clip: Path, counts: list[int], launch: Launch, seconds: float, progress: Any
) -> dict[str, Any]:
    """For each N in ``counts``: N cameras in one process, and (N > 1) N processes."""
    with tempfile.TemporaryDirectory(prefix="depthstream-bench-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        progress("cameras: building the model once")
        _run_all(clip, [1], launch, cache, work, 1.0, "warm")
        out: dict[str, Any] = {}
        for n in counts:
            progress(f"cameras: {n} in one serve")
            out[f"one_process_{n}"] = _row(
                _run_all(clip, [n], launch, cache, work, seconds, f"s{n}")
            )
            if n > 1:
                progress(f"cameras: {n} serve processes of one camera each")
                runs = _run_all(clip, [1] * n, launch, cache, work, seconds, f"p{n}")
                out[f"processes_{n}"] = _row(runs)
        return out
