"""The models side by side: each network of the registry at its bench sizes, every path,
against the physical limit of this machine.

The limit is this machine's own fp32 matrix-multiply throughput, measured in the same
run (before and after the models are timed; the better of the two counts).  Each path's
rate is the eager network's arithmetic per frame (torch's flop counter) over its median
time, so a reduced-precision path may pass the fp32 limit.  Where the official code
computes attention unfused, its eager speed is timed too.  The live input size chosen for
a model is the largest bench size at which its exact default path keeps
:data:`LIVE_FPS` frames per second here; it is then timed live, frame age over the same
model's time alone, and its temporal stability measured on every clip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.bench.eager import UNFUSED
from depthstream.stream.bench.frames import pick_frames, square_inputs
from depthstream.stream.bench.model_bench import (
    REFERENCE,
    BenchPath,
    Worker,
    shape_key,
    time_alone,
    time_paths,
)
from depthstream.stream.bench.pipeline_bench import Launch, run_file, stability_run
from depthstream.stream.errors import UserError
from depthstream.stream.model.registry import MODELS, ModelSpec
from depthstream.stream.transform import PREPROCESSING, to_net_input

OFFICIAL = BenchPath(REFERENCE.backend, UNFUSED)
EXACT = BenchPath("torch", "fp32")
LIVE_FPS = 5.0
FRAMES = 4  # frames each path is scored on, per size
ROUNDS, PER_ROUND = 3, 2


def families(text: str) -> list[ModelSpec]:
    """The models named in ``text`` (comma-separated), one per network: the metric heads
    cost what the relative one costs."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise UserError(f"--models: {', '.join(unknown)} not one of {', '.join(MODELS)}")
    by_network: dict[str, ModelSpec] = {}
    for name in names:
        by_network.setdefault(MODELS[name].network, MODELS[name])
    return list(by_network.values())


def _arithmetic(spec: dict[str, Any], keys: list[str]) -> tuple[dict[str, float], float]:
    """GFLOP per frame at each shape, and the fp32 matrix-multiply GFLOP/s (the best of
    its measures), from one eager worker."""
    worker = Worker(REFERENCE, spec)
    try:
        replies = [worker.ask(op="arithmetic", shape=key) for key in keys]
    finally:
        worker.close()
    gemm = max(reply["gemm_gflops"] for reply in replies)
    return {key: reply["gflop"] for key, reply in zip(keys, replies, strict=True)}, gemm


def _rows(results: list[Any], gflop: dict[str, float], gemm: float, base: BenchPath) -> list[dict]:
    """Per path and shape: p50, achieved GFLOP/s, its share of the limit, the speed over
    ``base`` (the official eager computation) and Pearson r against fp32 eager."""
    by_path = {r.path: r for r in results}
    rows = []
    for result in results:
        for key, times in result.ms.items():
            p50 = float(np.median(times))
            rate = gflop[key] / (p50 / 1000.0)
            rows.append(
                {
                    "path": result.path.label,
                    "precision": result.path.precision,
                    "shape": key,
                    "p50_ms": round(p50, 1),
                    "gflop": round(gflop[key], 2),
                    "gflops": round(rate, 1),
                    "of_limit": round(rate / gemm, 3),
                    "over_official": round(float(np.median(by_path[base].ms[key])) / p50, 2),
                    "pearson_min": round(result.fidelity[key].pearson_min, 4),
                }
            )
    return rows


def live_size(rows: list[dict], sizes: list[int]) -> int:
    """The largest of ``sizes`` at which the exact path keeps :data:`LIVE_FPS` here (else
    the smallest)."""
    fast = [
        int(r["shape"].split("x")[0])
        for r in rows
        if r["path"] == EXACT.label and r["p50_ms"] <= 1000.0 / LIVE_FPS
    ]
    return max(fast) if fast else min(sizes)


def measure_family(
    model: ModelSpec,
    sizes: list[int],
    frames: list[np.ndarray],
    paths: list[BenchPath],
    base_spec: dict[str, Any],
    scratch: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Model-only rows of one network at ``sizes``, with the limit they run against."""
    prep = PREPROCESSING[model.preprocessing]
    keys = [shape_key((s, s)) for s in sizes]
    inputs = scratch / f"inputs-{model.name}.npz"
    arrays = {shape_key((s, s)): square_inputs(frames, s, prep) for s in sizes}
    np.savez(inputs, **arrays)
    spec = {**base_spec, "model": model.name, "inputs": str(inputs), "standin": False}
    progress(f"{model.name}: arithmetic and the matrix-multiply limit")
    gflop, gemm_before = _arithmetic(spec, keys)
    everything = [OFFICIAL, *paths] if model.unfused_attention else paths
    shapes = [(s, s) for s in sizes]
    results = time_paths(everything, shapes, spec, ROUNDS, PER_ROUND, scratch, progress)
    _, gemm_after = _arithmetic(spec, keys[-1:])
    gemm = max(gemm_before, gemm_after)
    base = OFFICIAL if model.unfused_attention else REFERENCE
    rows = _rows(results, gflop, gemm, base)
    return {
        "gemm_gflops": {"before": round(gemm_before, 1), "after": round(gemm_after, 1)},
        "official": base.label,
        "rows": rows,
        "live_size": live_size(rows, sizes),
    }


def measure_live(
    model: ModelSpec,
    size: int,
    media: list[Path],
    clip_rgb: list[np.ndarray],
    launch: Launch,
    spec: dict[str, Any],
    seconds: float,
    frames: int,
    scratch: Path,
) -> dict[str, Any]:
    """``run`` live on the first clip (``clip_rgb``: frames of it) at ``size``, frame age
    against the model timed alone on the clip's network shape just before and after (the
    faster of the two, so a machine slowing down cannot flatter the ratio), and
    ``eval --video`` stability on every clip."""
    prep = PREPROCESSING[model.preprocessing]
    net = np.stack([to_net_input(rgb, size, prep) for rgb in clip_rgb])
    key = shape_key(net.shape[2:])
    inputs = scratch / f"live-{model.name}.npz"
    np.savez(inputs, **{key: net})
    alone_spec = {**spec, "model": model.name, "inputs": str(inputs), "standin": False}
    before = time_alone(EXACT, key, alone_spec, ROUNDS, PER_ROUND)
    live = run_file(media[0], "live", launch, scratch / "cache", scratch, seconds)
    after = time_alone(EXACT, key, alone_spec, ROUNDS, PER_ROUND)
    age = live["frame_age_ms"]["p50"]
    return {
        "size": size,
        "network_shape": key,
        "fps": live["fps"],
        "frame_age_ms": live["frame_age_ms"],
        "model_alone_ms": {"before_p50": before, "after_p50": after},
        "age_over_model": round(age / min(before, after), 2),
        "stability": stability_run(media, launch, frames, scratch),
    }


def run_models(
    models: dict[str, list[int]],
    media: list[Path],
    paths: list[BenchPath],
    launch: Callable[[ModelSpec, int], Launch],
    base_spec: dict[str, Any],
    options: tuple[float, int],
    scratch: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every family's rows at its sizes (``models``: name -> sizes); then, for each, a live
    run at the live size chosen from them.  ``options``: seconds of the live run, frames
    per clip of the stability run."""
    seconds, stability_frames = options
    frames = pick_frames(media, 2)[:FRAMES]
    clip_rgb = pick_frames(media[:1], PER_ROUND)
    out = {}
    for name, sizes in models.items():
        model = MODELS[name]
        family = measure_family(model, sizes, frames, paths, base_spec, scratch, progress)
        size = family["live_size"]
        progress(f"{model.name}: live at {size}, then stability on every clip")
        family["live"] = measure_live(
            model, size, media, clip_rgb, launch(model, size), base_spec, seconds,
            stability_frames, scratch,
        )  # fmt: skip
        out[model.name] = family
    return out
