"""``depthstream bench``: every runtime side by side, then the whole pipeline.

Prints Markdown tables and writes everything to JSON; ``--markdown`` writes
them as a document (``docs/performance.md`` is one).  Fidelity is measured
against the fp32 eager output of the weights being timed (with the official
weights that is the real answer) and, because random weights exaggerate
low-precision error, also on a stand-in whose batch norm was re-estimated on
real frames.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.bench.cameras_bench import camera_runs
from depthstream.stream.bench.frames import clips, pick_frames, split, square_inputs
from depthstream.stream.bench.model_bench import (
    REFERENCE,
    BenchPath,
    shape_key,
    standin_fidelity,
    time_alone,
    time_paths,
)
from depthstream.stream.bench.models_bench import families, run_models
from depthstream.stream.bench.models_report import MODELS_HEADING, models_section
from depthstream.stream.bench.pipeline_bench import Launch, naive_run, pipeline_runs, stability_run
from depthstream.stream.bench.report import (
    CAMERAS_HEADING,
    camera_section,
    cpu_line,
    document,
    machine,
    tables,
    with_section,
)
from depthstream.stream.bench.stages import cpu_bound_fps, stage_costs
from depthstream.stream.bench.tolerances import DEFAULT_BAR
from depthstream.stream.config import BACKENDS, Config, ModelConfig
from depthstream.stream.errors import UserError
from depthstream.stream.model.locate import choose_weights
from depthstream.stream.model.registry import MODELS, ModelSpec
from depthstream.stream.outputs import check_writable
from depthstream.stream.runtimes.base import uses_bf16
from depthstream.stream.runtimes.registry import bf16_supported
from depthstream.stream.transform import PREPROCESSING, network_size, to_net_input

log = logging.getLogger("depthstream")


@dataclass(frozen=True)
class BenchOptions:
    """What to measure (the ``bench`` command's flags)."""

    media: str | None = None
    paths: str | None = None
    sizes: str | None = None
    rounds: int = 5
    per_round: int = 8
    frames_per_clip: int = 8
    pipeline_paths: str = "torch:fp32,openvino:fp32"
    seconds: float = 20.0
    offline_frames: int = 150
    cameras: str = "1,2,4"
    cameras_only: bool = False
    standin: bool = True
    models: str = ",".join(MODELS)
    models_only: bool = False
    json: str = "bench.json"
    markdown: str | None = None
    command: str = "depthstream bench"


def available_paths(skipped: list[str]) -> list[BenchPath]:
    """Every backend/precision this machine can run, noting what it cannot."""
    paths = [REFERENCE]
    for backend, offered in BACKENDS.items():
        if importlib.util.find_spec(offered.package) is None:
            skipped.append(f"{backend}: package not installed")
            continue
        for precision in offered.precisions:
            if uses_bf16(precision) and not bf16_supported(backend):
                skipped.append(f"{backend} {precision}: this CPU lacks bf16")
                continue
            paths.append(BenchPath(backend, precision))
    return paths


def _parse_paths(text: str) -> list[BenchPath]:
    paths = [BenchPath.parse(item.strip()) for item in text.split(",") if item.strip()]
    for p in paths:
        if p != REFERENCE and (
            p.backend not in BACKENDS or p.precision not in BACKENDS[p.backend].precisions
        ):
            raise UserError(f"bench: unknown path {p.backend}:{p.precision}")
    return paths


def _sizes(text: str | None, model: ModelConfig) -> list[int]:
    """``--sizes``, each a valid input size of the model; by default its bench sizes."""
    if text is None:
        return list(model.spec.bench_sizes)
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes must be numbers like 256,192,128, got {text!r}") from None
    if not sizes:
        raise UserError("--sizes names no size")
    for size in sizes:
        try:
            replace(model, input_size=size).check()
        except ValueError as exc:
            raise UserError(f"--sizes: {exc}") from None
    return sizes


def _ratios(
    model: list[dict], clip_key: str, pipeline: dict, naive: dict | None, stages: dict | None
) -> dict:
    """The pipeline's figures relative to the model alone (same backend, same shape), and
    to the bound that the CPU cost of the model plus the stages around it sets."""
    by_path = {r["path"]: r["shapes"][clip_key] for r in model}
    cores = os.cpu_count() or 1
    ratios: dict[str, Any] = {}
    for label, runs in pipeline.items():
        alone = by_path.get(label)
        if alone is None:
            continue
        bound = cpu_bound_fps(alone["cpu_ms"], stages, cores) if stages else None
        ratios[label] = {
            "offline_fps_over_model_fps": round(runs["offline"]["fps"] / alone["fps"], 3),
            "cpu_bound_fps": bound,
            "offline_fps_over_cpu_bound": round(runs["offline"]["fps"] / bound, 3)
            if bound
            else None,
            "live_age_p50_over_model_ms": round(
                runs["live"]["frame_age_ms"]["p50"] / alone["p50_ms"], 2
            ),
            # The same age over the model timed alone just before and just after the
            # live run (see time_alone), each on its own: when the two differ, the
            # machine changed speed within that minute, and no single figure is right.
            **{
                f"live_age_p50_over_model_{when}_ms": round(
                    runs["live"]["frame_age_ms"]["p50"]
                    / runs["live"]["model_alone_ms"][f"{when}_p50"],
                    2,
                )
                for when in ("before", "after")
            },
            # The same age over the inference step as the pipeline times it (network
            # input, model, depth resize), slowed by the threads that share the cores.
            "live_age_p50_over_inference_ms": round(
                runs["live"]["frame_age_ms"]["p50"] / runs["live"]["inference_ms"]["p50"], 2
            ),
        }
        if naive is not None:
            ratios[label]["live_fps_over_naive_fps"] = round(runs["live"]["fps"] / naive["fps"], 2)
            ratios[label]["naive_age_p50_over_live_age_p50"] = round(
                naive["frame_age_ms"]["p50"] / runs["live"]["frame_age_ms"]["p50"], 1
            )
    return ratios


def _counts(text: str) -> list[int]:
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = [0]
    if any(n < 1 or n > 16 for n in counts):
        raise UserError(f"--cameras {text!r}: camera counts from 1 to 16, comma-separated")
    return counts


def run_cameras_only(cfg: Config, weights: str, args: BenchOptions) -> int:
    """Only the camera runs, as their own section."""
    counts = _counts(args.cameras) or [1, 2, 4]
    media = clips(Path(args.media) if args.media else None)
    launch = Launch(weights, "torch", "fp32", cfg.model.threads, cfg.model.size(), cfg.model.name)
    runs = camera_runs(media[0], counts, launch, args.seconds, lambda m: log.info("bench: %s", m))
    return _section_only(args, "cameras", runs, CAMERAS_HEADING, camera_section(runs))


def _section_only(
    args: BenchOptions, key: str, data: dict[str, Any], heading: str, section: str
) -> int:
    """Print one section, write its JSON, and replace it in the Markdown page (the rest
    of the page stays as the last full run wrote it)."""
    print(section)
    _write(Path(args.json), json.dumps({"machine": machine(), key: data}, indent=2))
    if args.markdown:
        page = Path(args.markdown)
        old = page.read_text() if page.is_file() else "# Performance\n"
        _write(page, with_section(old, heading, section))
    return 0


def _measured(args: BenchOptions) -> str:
    m = machine()
    return f"Measured by `{args.command}` on {m['date']}: {cpu_line(m)}."


def _models(
    cfg: Config, weights: str, args: BenchOptions, paths: list[BenchPath], scratch: Path
) -> dict[str, Any]:
    """The models side by side (see :mod:`stream.bench.models_bench`)."""

    def launch(model: ModelSpec, size: int) -> Launch:
        return Launch(weights, "torch", "fp32", cfg.model.threads, size, model.name)

    spec = {"weights": weights, "threads": cfg.model.threads, "cache_dir": str(scratch / "cache")}
    media = clips(Path(args.media) if args.media else None)
    sizes = {m.name: _sizes(args.sizes, ModelConfig(name=m.name)) for m in families(args.models)}
    return run_models(
        sizes,
        media,
        paths,
        launch,
        spec,
        (args.seconds, args.offline_frames),
        scratch,
        lambda m: log.info("bench: %s", m),
    )


def run_models_only(cfg: Config, weights: str, args: BenchOptions) -> int:
    """Only the models side by side, as their own section."""
    skipped: list[str] = []
    paths = _parse_paths(args.paths) if args.paths else available_paths(skipped)
    with tempfile.TemporaryDirectory(prefix="depthstream-bench-") as tmp:
        models = _models(cfg, weights, args, paths, Path(tmp))
    section = models_section(models, _measured(args))
    return _section_only(args, "models", models, MODELS_HEADING, section)


def run_bench(cfg: Config, weights_flag: str | None, args: BenchOptions) -> int:
    """Measure, print the tables, write the JSON (and the Markdown document)."""
    choice = choose_weights(weights_flag, cfg.model)
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            check_writable(Path(path), flag)
    log.info("bench: %s", cpu_line(machine()))
    weights = "synthetic" if choice.synthetic else str(choice.path)
    if args.cameras_only:
        return run_cameras_only(cfg, weights, args)
    if args.models_only:
        return run_models_only(cfg, weights, args)
    if args.rounds < 1 or args.per_round < 1 or args.frames_per_clip < 2:
        raise UserError("--rounds and --per-round must be >= 1, --frames-per-clip >= 2")
    media = clips(Path(args.media) if args.media else None)
    sizes = _sizes(args.sizes, cfg.model)
    prep = PREPROCESSING[cfg.model.spec.preprocessing]
    skipped: list[str] = []
    paths = _parse_paths(args.paths) if args.paths else available_paths(skipped)
    pipeline_paths = _parse_paths(args.pipeline_paths)
    counts = _counts(args.cameras)
    if args.models:
        families(args.models)  # a bad name fails now, not after an hour of measuring

    def progress(message: str) -> None:
        log.info("bench: %s", message)

    progress(f"reading frames from {len(media)} clip(s)")
    measure, fit = split(pick_frames(media, args.frames_per_clip))
    clip = media[0]
    clip_rgb = pick_frames([clip], args.frames_per_clip)
    clip_shape = network_size(*clip_rgb[0].shape[:2], cfg.model.size(), prep)
    shapes = [(s, s) for s in sizes]
    with tempfile.TemporaryDirectory(prefix="depthstream-bench-") as tmp:
        scratch = Path(tmp)
        arrays = {shape_key(s): square_inputs(measure, s[0], prep) for s in shapes}
        if clip_shape not in shapes:
            shapes.append(clip_shape)
            arrays[shape_key(clip_shape)] = np.stack(
                [to_net_input(f, cfg.model.size(), prep) for f in clip_rgb]
            )
        arrays["fit"] = square_inputs(fit, 256)
        np.savez(scratch / "inputs.npz", **arrays)
        spec = {
            "weights": weights,
            "standin": False,
            "model": cfg.model.name,
            "threads": cfg.model.threads,
            "cache_dir": str(scratch / "cache"),
            "inputs": str(scratch / "inputs.npz"),
        }
        results = time_paths(paths, shapes, spec, args.rounds, args.per_round, scratch, progress)
        model = [r.to_dict() for r in results]
        main_key = shape_key(shapes[0])
        standin = {}
        if args.standin and cfg.model.spec.standin:
            progress("fidelity on the stand-in weights")
            fids = standin_fidelity(paths, [shape_key(s) for s in shapes], spec, scratch)
            standin = {
                label: {k: f.to_dict() for k, f in by_shape.items()}
                for label, by_shape in fids.items()
            }

        def launch(path: BenchPath) -> Launch:
            return Launch(
                weights,
                path.backend,
                path.precision,
                cfg.model.threads,
                cfg.model.size(),
                cfg.model.name,
            )

        def alone(path: BenchPath) -> Callable[[], float]:
            key = shape_key(clip_shape)
            return lambda: time_alone(path, key, spec, args.rounds, args.per_round)

        pipeline: dict[str, Any] = {}
        for p in pipeline_paths:
            pipeline[p.label] = pipeline_runs(
                clip, launch(p), args.seconds, args.offline_frames, progress, alone(p)
            )
        cameras = None
        if counts:
            # The default runtime, as `serve` runs it (the eager reference is no CLI backend).
            default = BenchPath("torch", "fp32")
            cameras = camera_runs(clip, counts, launch(default), args.seconds, progress)
        stability = None
        if pipeline_paths:
            progress("temporal stability of every clip")
            stability = stability_run(
                media, launch(pipeline_paths[0]), args.offline_frames, scratch
            )
        models = _models(cfg, weights, args, paths, scratch) if args.models else None
    naive = stages = None
    if pipeline_paths:
        progress("naive single-thread loop")
        naive = naive_run(clip, launch(REFERENCE), args.seconds)
        progress("CPU cost of the stages around the model")
        stages = stage_costs(clip, cfg, args.offline_frames)
    report = {
        "machine": machine(),
        "weights": "synthetic (untrained)" if choice.synthetic else str(choice.path),
        "frames": {"clips": [p.name for p in media], "measured": len(measure), "fit": len(fit)},
        "pipeline_clip": {"name": clip.name, "network_shape": shape_key(clip_shape)},
        "skipped": skipped,
        "fidelity_bar": {"pearson_min": DEFAULT_BAR},
        "model": model,
        "standin_fidelity": standin,
        "pipeline": pipeline,
        "naive": naive,
        "stages": stages,
        "stability": stability,
        "cameras": cameras,
        "models": models,
        "ratios": _ratios(model, shape_key(clip_shape), pipeline, naive, stages),
    }
    keys = [shape_key(s) for s in shapes]
    sections = (models_section(models, _measured(args)),) if models else ()
    print(tables(report, keys, main_key, sections))
    _write(Path(args.json), json.dumps(report, indent=2))
    if args.markdown:
        page = document(report, keys, main_key, args.command, sections)
        _write(Path(args.markdown), page)
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
