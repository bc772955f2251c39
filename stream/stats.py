"""The run's figures: counts, rates and latency percentiles, logged as a line and written as
JSON."""

from __future__ import annotations

import resource
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = 10_000
AGE_BUCKETS_MS = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


def peak_rss_mb() -> float:
    """Peak resident memory of this process.

    Linux's ``VmHWM`` first: ``ru_maxrss`` survives ``exec``, so a child
    started by a big parent (the benchmark) would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, every thread included.

    ``time.process_time`` reads the kernel's per-process clock to the
    nanosecond; ``os.times`` counts 10 ms ticks, which read a fast path's
    few short frames as no CPU at all.
    """
    return time.process_time()


def _summary(values: deque[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    arr = np.fromiter(values, dtype=np.float64)
    p50, p95 = np.percentile(arr, [50, 95])
    return {
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "max": round(float(arr.max()), 2),
    }


@dataclass(frozen=True, kw_only=True)
class StatsSnapshot:
    """A run's figures at one moment: counts, the recent rate, the wall-clock time of the
    first output, the most recent per-frame timings and the frame-age histogram
    (:data:`AGE_BUCKETS_MS`, cumulative as Prometheus counts them)."""

    frames_processed: int
    recent_fps: float
    first_output_unix: float | None
    inference_ms: tuple[float, ...]
    frame_age_ms: tuple[float, ...]
    age_buckets: tuple[int, ...]
    age_sum_ms: float


class RunStats:
    """Collects per-frame timings (the most recent :data:`SAMPLES` of each)."""

    def __init__(self) -> None:
        self._frames_processed = 0
        self._frames_failed = 0
        self._inference_ms: deque[float] = deque(maxlen=SAMPLES)
        self._frame_age_ms: deque[float] = deque(maxlen=SAMPLES)
        self._source_delay_ms: deque[float] = deque(maxlen=SAMPLES)
        self._first: float | None = None
        self._first_output_unix: float | None = None
        self._last: float | None = None
        self._recent: deque[float] = deque(maxlen=30)
        self._age_buckets = [0] * len(AGE_BUCKETS_MS)
        self._age_sum_ms = 0.0
        self._stabilizer: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, inference_ms: float, age_ms: float, source_delay_ms: float = 0.0) -> int:
        """Count one processed frame; returns how many there have been."""
        now = time.monotonic()
        with self._lock:
            self._frames_processed += 1
            self._inference_ms.append(inference_ms)
            self._frame_age_ms.append(age_ms)
            self._source_delay_ms.append(source_delay_ms)
            self._age_sum_ms += age_ms
            for i, bound in enumerate(AGE_BUCKETS_MS):
                if age_ms <= bound:
                    self._age_buckets[i] += 1
            if self._first is None:
                self._first = now
                self._first_output_unix = time.time()
            self._last = now
            self._recent.append(now)
            return self._frames_processed

    def record_failure(self) -> None:
        """A frame the model or the renderer could not process (not the source's fault)."""
        with self._lock:
            self._frames_failed += 1

    def record_stabilizer(self, state: str) -> None:
        """How the stabilizer treated a frame (smoothed, passthrough or reset)."""
        with self._lock:
            self._stabilizer[state] = self._stabilizer.get(state, 0) + 1

    def _fps(self) -> float:
        """Processed frames per second over the whole run (lock held)."""
        if self._first is None or self._last is None or self._last <= self._first:
            return 0.0
        return (self._frames_processed - 1) / (self._last - self._first)

    def _recent_fps(self) -> float:
        """Frames per second over the last 30 frames (lock held)."""
        if len(self._recent) < 2:
            return 0.0
        return (len(self._recent) - 1) / max(self._recent[-1] - self._recent[0], 1e-9)

    @property
    def recent_fps(self) -> float:
        """Frames per second over the last 30 frames, for the overlay."""
        with self._lock:
            return self._recent_fps()

    def progress(self) -> tuple[int, float]:
        """Frames processed so far and the recent rate: cheap enough for every frame."""
        with self._lock:
            return self._frames_processed, self._recent_fps()

    def snapshot(self) -> StatsSnapshot:
        """The figures as they are now, copied under the lock (safe from any thread)."""
        with self._lock:
            return StatsSnapshot(
                frames_processed=self._frames_processed,
                recent_fps=self._recent_fps(),
                first_output_unix=self._first_output_unix,
                inference_ms=tuple(self._inference_ms),
                frame_age_ms=tuple(self._frame_age_ms),
                age_buckets=tuple(self._age_buckets),
                age_sum_ms=self._age_sum_ms,
            )

    def summary(self, captured: int, dropped: int, reconnects: int, corrupt: int) -> dict[str, Any]:
        with self._lock:
            return {
                "frames_captured": captured,
                "frames_processed": self._frames_processed,
                "frames_dropped": dropped,
                "frames_corrupt": corrupt,
                "frames_failed": self._frames_failed,
                "fps": round(self._fps(), 2),
                "inference_ms": _summary(self._inference_ms),
                "frame_age_ms": _summary(self._frame_age_ms),
                "source_delay_ms": _summary(self._source_delay_ms),
                "reconnects": reconnects,
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "first_output_unix": self._first_output_unix,
                **({"stabilizer": dict(self._stabilizer)} if self._stabilizer else {}),
            }


def format_line(summary: dict[str, Any]) -> str:
    """The summary as a person reads it: ``24.6 fps | infer 17 ms p50 | age 19 ms p50 | ...``.

    Counters that are still zero (corrupt, failed, reconnects) are left out.
    """

    def ms(figures: dict[str, float | None]) -> str:
        return "-" if figures["p50"] is None else f"{figures['p50']:.0f} ms p50"

    rss = summary["peak_rss_mb"]
    parts = [
        f"{summary['fps']:.1f} fps",
        f"infer {ms(summary['inference_ms'])}",
        f"age {ms(summary['frame_age_ms'])}",
        f"dropped {summary['frames_dropped']}",
    ]
    if summary["source_delay_ms"]["p50"]:
        parts.insert(3, f"source delay {ms(summary['source_delay_ms'])}")
    for key, label in (
        ("frames_corrupt", "corrupt"),
        ("frames_failed", "failed"),
        ("reconnects", "reconnects"),
    ):
        if summary[key]:
            parts.append(f"{label} {summary[key]}")
    if summary.get("stabilizer"):
        counts = summary["stabilizer"]
        parts.append(f"smoothed {counts.get('smoothed', 0) / max(sum(counts.values()), 1):.0%}")
    parts.append(f"rss {rss / 1024:.1f} GB" if rss >= 1024 else f"rss {rss:.0f} MB")
    return " | ".join(parts)


def closing_lines(summary: dict[str, Any], written: list[str]) -> list[str]:
    """What a run did, said once at its end: frames, rate, drops, and the files it wrote."""
    frames, fps = summary["frames_processed"], summary["fps"]
    seconds = f" in {frames / fps:.1f} s" if fps else ""
    lines = [
        f"done: {frames} frames{seconds} ({fps:.1f} fps), {summary['frames_dropped']} dropped"
        + "".join(
            f", {summary[key]} {label}"
            for key, label in (("frames_failed", "failed"), ("reconnects", "reconnects"))
            if summary[key]
        )
    ]
    lines += [f"wrote {path}" for path in written]
    return lines
