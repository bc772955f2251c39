"""Whole-pipeline benchmark: ``depthstream run`` and ``serve`` as a user starts them.

Each run is a child process: its CPU time comes from the kernel (``wait4``),
its peak memory from its own ``VmHWM`` (in its stats), and its start-up
includes importing everything.  Start-up
is measured cold (an empty cache: trace/export happens) and warm.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthstream.stream.errors import UserError
from depthstream.stream.model.registry import DEFAULT_MODEL


@dataclass
class Launch:
    """How every child starts: weights, runtime flags, threads, model."""

    weights: str
    backend: str
    precision: str
    threads: int
    input_size: int
    model: str = DEFAULT_MODEL

    def flags(self) -> list[str]:
        return [
            "--model",
            self.model,
            "--weights",
            self.weights,
            "--backend",
            self.backend,
            "--precision",
            self.precision,
            "--threads",
            str(self.threads),
            "--input-size",
            str(self.input_size),
        ]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "depthstream", *args]


def finish(proc: subprocess.Popen, spawned: float, stats_path: Path, log: Path) -> dict[str, Any]:
    if proc.returncode is None:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    else:  # already reaped by a poll(): it ended before it was told to
        usage = None
    wall = time.time() - spawned
    code = proc.returncode
    if code != 0 or usage is None or not stats_path.is_file():
        lines = log.read_text(errors="replace").strip().splitlines()
        raise UserError(f"bench child {proc.args[3]} failed ({code}): {lines[-1] if lines else ''}")
    stats = json.loads(stats_path.read_text())
    first = stats.pop("first_output_unix")
    return {
        **stats,
        "wall_s": round(wall, 2),
        "cpu_percent": round(100.0 * (usage.ru_utime + usage.ru_stime) / wall, 1),
        "first_output_s": round(first - spawned, 2) if first else None,
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    with log.open("w") as err:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env), time.time()


def run_file(
    clip: Path, mode: str, launch: Launch, cache: Path, work: Path, limit: float
) -> dict[str, Any]:
    """``run`` headless on ``clip``: live (paced, for ``limit`` s) or offline (recorded)."""
    stats = work / f"run-{mode}-{time.monotonic_ns()}.json"
    args = ["run", str(clip), "--display", "none", "--mode", mode, "--stats-json", str(stats)]
    if mode == "offline":
        args += ["--record", str(work / "offline.mp4"), "--frames", str(int(limit))]
    else:
        args += ["--duration", str(limit)]
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    log = work / "child.log"
    proc, spawned = spawn(cli(*args, *launch.flags()), env, log)
    return finish(proc, spawned, stats, log)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    """Until ``serve`` at ``base`` has processed a frame (or its process ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if json.load(resp)["frames_processed"] > 0:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise UserError("bench: the server did not come up")


def run_serve(
    clip: Path, viewers: int, launch: Launch, cache: Path, work: Path, seconds: float
) -> dict[str, Any]:
    """``serve`` on ``clip`` (loopback only) with ``viewers`` aiortc viewers for ``seconds``.

    The viewers' aiortc is imported only here, when a serve run is measured.
    """
    from depthstream.stream.bench.viewers import watch

    port = free_port()
    config = work / f"serve-{viewers}.toml"
    config.write_text(f'[web]\nhost = "127.0.0.1"\nport = {port}\nice_loopback = true\n')
    stats = work / f"serve-{viewers}-{time.monotonic_ns()}.json"
    args = ["serve", str(clip), "--config", str(config), "--stats-json", str(stats)]
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    log = work / "child.log"
    proc, spawned = spawn(cli(*args, *launch.flags()), env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        seen = watch(base, viewers, seconds) if proc.poll() is None else []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    result = finish(proc, spawned, stats, log)
    result["viewer_fps"] = [v["fps"] for v in seen]
    return result


def pipeline_runs(
    clip: Path,
    launch: Launch,
    seconds: float,
    offline_frames: int,
    progress: Any,
    model_alone: Callable[[], float],
) -> dict[str, Any]:
    """Offline cold and warm, live, serve with 1 and 3 viewers, in that order.

    ``model_alone`` gives the same model's p50 without the pipeline; it runs
    just before and just after the live run, whose record keeps both.
    """
    with tempfile.TemporaryDirectory(prefix="depthstream-bench-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        out: dict[str, Any] = {}
        progress(f"pipeline: offline, cold cache ({launch.backend} {launch.precision})")
        out["offline_cold"] = run_file(clip, "offline", launch, cache, work, offline_frames)
        progress("pipeline: offline, warm cache")
        out["offline"] = run_file(clip, "offline", launch, cache, work, offline_frames)
        progress("pipeline: model alone, before the live run")
        before = model_alone()
        progress("pipeline: live")
        out["live"] = run_file(clip, "live", launch, cache, work, seconds)
        progress("pipeline: model alone, after the live run")
        after = model_alone()
        out["live"]["model_alone_ms"] = {"before_p50": before, "after_p50": after}
        for n in (1, 3):
            progress(f"pipeline: serve with {n} viewer(s)")
            out[f"serve_{n}"] = run_serve(clip, n, launch, cache, work, seconds)
        return out


def naive_run(clip: Path, launch: Launch, seconds: float) -> dict[str, Any]:
    """The tutorial loop (see :mod:`stream.bench.naive`) on the same clip."""
    spec = {
        "clip": str(clip),
        "seconds": seconds,
        "weights": launch.weights,
        "threads": launch.threads,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "depthstream.stream.bench.naive", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise UserError(f"bench naive baseline failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout)


def stability_run(media: list[Path], launch: Launch, frames: int, scratch: Path) -> dict[str, Any]:
    """``depthstream eval --video`` on every clip: raw, EMA-range and stabilized depth."""
    out = scratch / "stability.json"
    args = cli("eval", *launch.flags(), "--frames", str(frames), "--json", str(out))
    for clip in media:
        args += ["--video", str(clip)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise UserError(f"bench stability run failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(out.read_text())["clips"]
