"""Model-only benchmark: every path on the same real frames, interleaved, medians.

Each path runs in its own worker process, one input shape per process as in
a real run.  Rounds go path by path, in a rotating order, so slow drifts of
the machine (thermal, other load) spread over all paths instead of favouring
whichever ran first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.bench.fidelity import Fidelity, compare
from depthstream.stream.bench.worker import EAGER
from depthstream.stream.errors import UserError


@dataclass(frozen=True)
class BenchPath:
    backend: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"

    @classmethod
    def parse(cls, text: str) -> BenchPath:
        backend, _, precision = text.partition(":")
        return cls(backend, precision or "fp32")


REFERENCE = BenchPath(EAGER, "fp32")


def shape_key(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


class Worker:
    """A worker process for one path; :meth:`ask` sends a command and waits for its answer."""

    def __init__(self, path: BenchPath, spec: dict[str, Any]) -> None:
        self.path = path
        full = {**spec, "backend": path.backend, "precision": path.precision}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depthstream.stream.bench.worker", json.dumps(full)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.rss_mb = self._reply()["rss_mb"]

    def _reply(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            last = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise UserError(f"bench worker for {self.path.label} failed: {last}")
        reply = json.loads(line)
        self.rss_mb = reply["rss_mb"]
        return reply

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class PathResult:
    path: BenchPath
    ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    prepare_s: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    fidelity: dict[str, Fidelity] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        shapes = {}
        for key, times in self.ms.items():
            p50, p95 = np.percentile(times, [50, 95])
            shapes[key] = {
                "p50_ms": round(float(p50), 2),
                "p95_ms": round(float(p95), 2),
                "fps": round(1000.0 / float(p50), 1),
                "cpu_ms": round(1000.0 * self.cpu_s[key] / len(times), 1),
                "runs": len(times),
                "first_use_s": round(self.prepare_s[key], 2),
            }
        return {
            "path": self.path.label,
            "shapes": shapes,
            "peak_rss_mb": round(self.rss_mb, 1),
            "fidelity": {k: f.to_dict() for k, f in self.fidelity.items()},
        }


def _with_reference(paths: list[BenchPath]) -> list[BenchPath]:
    """``paths`` led by the fp32 eager reference every fidelity figure compares against."""
    return [REFERENCE, *[p for p in paths if p != REFERENCE]]


def _start(paths: list[BenchPath], spec: dict[str, Any]) -> list[Worker]:
    workers: list[Worker] = []
    try:
        for path in paths:
            workers.append(Worker(path, spec))
    except BaseException:
        for w in workers:
            w.close()
        raise
    return workers


def _outputs(workers: list[Worker], key: str, scratch: Path) -> dict[BenchPath, np.ndarray]:
    out = {}
    for w in workers:
        target = scratch / f"{w.path.backend}-{w.path.precision}-{key}.npy"
        w.ask(op="outputs", shape=key, path=str(target))
        out[w.path] = np.load(target)
    return out


def _first_use(
    paths: list[BenchPath],
    key: str,
    spec: dict[str, Any],
    results: dict[BenchPath, PathResult],
    progress: Any,
) -> None:
    """Build every cache (traces, ONNX and int8 files) for ``key``, recording how long
    first use takes."""
    builders = _start(paths, spec)
    try:
        for w in builders:
            progress(f"first use of {w.path.label} at {key}")
            results[w.path].prepare_s[key] = w.ask(op="prepare", shape=key)["seconds"]
    finally:
        for w in builders:
            w.close()


def _warm(worker: Worker, key: str) -> None:
    """Prepare ``key`` and run two untimed frames, so timing starts at steady speed."""
    worker.ask(op="prepare", shape=key)
    worker.ask(op="time", shape=key, count=2)


def time_paths(
    paths: list[BenchPath],
    shapes: list[tuple[int, int]],
    spec: dict[str, Any],
    rounds: int,
    per_round: int,
    scratch: Path,
    progress: Any,
) -> list[PathResult]:
    """Latency per path and shape, and fidelity against eager on the timed weights.

    Each shape gets fresh workers, as each ``run`` holds one input shape: a
    torch process holding two shapes frees and page-faults its activation
    buffers every frame, which no real run pays.  Caches are built first, so
    the timed workers start warm, as every start after the first does, and
    their peak memory is the steady one.
    """
    everything = _with_reference(paths)
    results = {p: PathResult(p) for p in everything}
    for shape in shapes:
        key = shape_key(shape)
        _first_use(everything, key, spec, results, progress)
        workers = _start(everything, spec)
        try:
            for w in workers:
                _warm(w, key)
            for r in range(rounds):
                progress(f"timing {key}, round {r + 1}/{rounds}")
                for w in workers[r % len(workers) :] + workers[: r % len(workers)]:
                    reply = w.ask(op="time", shape=key, count=per_round)
                    result = results[w.path]
                    result.ms.setdefault(key, []).extend(reply["ms"])
                    result.cpu_s[key] = result.cpu_s.get(key, 0.0) + reply["cpu_s"]
            outs = _outputs(workers, key, scratch)
            for w in workers:
                result = results[w.path]
                result.fidelity[key] = compare(outs[w.path], outs[REFERENCE])
                result.rss_mb = max(result.rss_mb, w.rss_mb)
        finally:
            for w in workers:
                w.close()
    return list(results.values())


def time_alone(
    path: BenchPath, key: str, spec: dict[str, Any], rounds: int, per_round: int
) -> float:
    """Model-only latency p50 (ms) of ``path`` at ``key``, from a fresh worker, now.

    The pipeline bench takes these right before and after its live run: its
    age-over-model ratio then divides two figures from the same minute, where
    the model-only phase may be half an hour away, on a machine whose speed
    drifts.
    """
    worker = Worker(path, spec)
    try:
        _warm(worker, key)
        ms: list[float] = []
        for _ in range(rounds):
            ms.extend(worker.ask(op="time", shape=key, count=per_round)["ms"])
        return round(float(np.median(ms)), 2)
    finally:
        worker.close()


def standin_fidelity(
    paths: list[BenchPath], keys: list[str], spec: dict[str, Any], scratch: Path
) -> dict[str, dict[str, Fidelity]]:
    """Fidelity of each path on the stand-in weights (batch norm re-estimated), per shape
    (label -> shape -> fidelity); fresh workers for each shape, as in :func:`time_paths`."""
    everything = _with_reference(paths)
    fidelity: dict[str, dict[str, Fidelity]] = {}
    for key in keys:
        workers = _start(everything, {**spec, "standin": True})
        try:
            outs = _outputs(workers, key, scratch)
        finally:
            for w in workers:
                w.close()
        for path, got in outs.items():
            fidelity.setdefault(path.label, {})[key] = compare(got, outs[REFERENCE])
    return fidelity
