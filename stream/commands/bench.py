"""``depthstream bench``: every runtime side by side, then the whole pipeline.

Prints Markdown tables and writes everything to JSON.  Fidelity is measured
against the fp32 eager output of the weights being timed (with the official
weights that is the real answer) and, because random weights exaggerate
low-precision error, also on a stand-in whose batch norm was re-estimated on
real frames.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stream.bench.frames import clips, pick_frames, split, square_inputs
from stream.bench.model_bench import (
    REFERENCE,
    BenchPath,
    shape_key,
    standin_fidelity,
    time_alone,
    time_paths,
)
from stream.bench.pipeline_bench import Launch, naive_run, pipeline_runs
from stream.bench.report import (
    fidelity_table,
    machine,
    model_table,
    pearson_table,
    pipeline_table,
    ratio_table,
    stage_table,
)
from stream.bench.stages import cpu_bound_fps, stage_costs
from stream.commands.common import config, write_output
from stream.errors import UserError
from stream.model.locate import choose_weights
from stream.runtimes.base import DEFAULT_BAR
from stream.runtimes.registry import PRECISIONS, bf16_supported, uses_bf16
from stream.transform import network_size, to_net_input

log = logging.getLogger("depthstream")
RUNTIME_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "bench", parents=[common], help="measure every runtime and the pipeline"
    )
    p.add_argument(
        "--media", metavar="DIR", help="folder of video clips to take frames from (default: sample)"
    )
    p.add_argument("--paths", metavar="LIST", help="backend:precision,... (default: all available)")
    p.add_argument("--sizes", default="256,192,128", metavar="LIST", help="square input sizes")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--per-round", type=int, default=8, metavar="N", help="frames per round")
    p.add_argument("--frames-per-clip", type=int, default=8, metavar="N")
    p.add_argument(
        "--pipeline-paths",
        default="torch:fp32,openvino:fp32",
        metavar="LIST",
        help="paths to run the whole pipeline with ('' to skip)",
    )
    p.add_argument("--seconds", type=float, default=20.0, help="length of each live/serve run")
    p.add_argument("--offline-frames", type=int, default=150, metavar="N")
    p.add_argument("--no-standin", action="store_true", help="skip stand-in fidelity")
    p.add_argument("--json", default="bench.json", metavar="PATH", help="(default: bench.json)")
    p.add_argument("--markdown", metavar="PATH", help="also write the tables here")
    p.set_defaults(run=run)


def available_paths(skipped: list[str]) -> list[BenchPath]:
    """Every backend/precision this machine can run, noting what it cannot."""
    paths = [REFERENCE]
    for backend, precisions in PRECISIONS.items():
        if importlib.util.find_spec(RUNTIME_MODULES[backend]) is None:
            skipped.append(f"{backend}: package not installed")
            continue
        for precision in precisions:
            if uses_bf16(precision) and not bf16_supported(backend):
                skipped.append(f"{backend} {precision}: this CPU lacks bf16")
                continue
            paths.append(BenchPath(backend, precision))
    return paths


def _parse_paths(text: str) -> list[BenchPath]:
    paths = [BenchPath.parse(item.strip()) for item in text.split(",") if item.strip()]
    for p in paths:
        if p != REFERENCE and p.precision not in PRECISIONS.get(p.backend, ()):
            raise UserError(f"bench: unknown path {p.backend}:{p.precision}")
    return paths


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes must be numbers like 256,192,128, got {text!r}") from None
    if not sizes or any(s % 32 or not 64 <= s <= 1024 for s in sizes):
        raise UserError("--sizes must be multiples of 32 in 64..1024")
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


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    if args.rounds < 1 or args.per_round < 1 or args.frames_per_clip < 2:
        raise UserError("--rounds and --per-round must be >= 1, --frames-per-clip >= 2")
    media = clips(Path(args.media) if args.media else None)
    sizes = _sizes(args.sizes)
    skipped: list[str] = []
    paths = _parse_paths(args.paths) if args.paths else available_paths(skipped)
    pipeline_paths = _parse_paths(args.pipeline_paths)
    choice = choose_weights(args.weights, cfg)
    weights = "synthetic" if choice.synthetic else str(choice.path)

    def progress(message: str) -> None:
        log.info("bench: %s", message)

    progress(f"reading frames from {len(media)} clip(s)")
    measure, fit = split(pick_frames(media, args.frames_per_clip))
    clip = media[0]
    clip_rgb = pick_frames([clip], args.frames_per_clip)
    clip_shape = network_size(*clip_rgb[0].shape[:2], cfg.model.input_size)
    shapes = [(s, s) for s in sizes]
    with tempfile.TemporaryDirectory(prefix="depthstream-bench-") as tmp:
        scratch = Path(tmp)
        arrays = {shape_key(s): square_inputs(measure, s[0]) for s in shapes}
        if clip_shape not in shapes:
            shapes.append(clip_shape)
            arrays[shape_key(clip_shape)] = np.stack(
                [to_net_input(f, cfg.model.input_size) for f in clip_rgb]
            )
        arrays["fit"] = square_inputs(fit, 256)
        np.savez(scratch / "inputs.npz", **arrays)
        spec = {
            "weights": weights,
            "standin": False,
            "threads": cfg.model.threads,
            "cache_dir": str(scratch / "cache"),
            "inputs": str(scratch / "inputs.npz"),
        }
        results = time_paths(paths, shapes, spec, args.rounds, args.per_round, scratch, progress)
        model = [r.to_dict() for r in results]
        main_key = shape_key(shapes[0])
        standin = {}
        if not args.no_standin:
            progress("fidelity on the stand-in weights")
            fids = standin_fidelity(paths, [shape_key(s) for s in shapes], spec, scratch)
            standin = {
                label: {k: f.to_dict() for k, f in by_shape.items()}
                for label, by_shape in fids.items()
            }

        def launch(path: BenchPath) -> Launch:
            return Launch(
                weights, path.backend, path.precision, cfg.model.threads, cfg.model.input_size
            )

        def alone(path: BenchPath) -> Callable[[], float]:
            key = shape_key(clip_shape)
            return lambda: time_alone(path, key, spec, args.rounds, args.per_round)

        pipeline: dict[str, Any] = {}
        for p in pipeline_paths:
            pipeline[p.label] = pipeline_runs(
                clip, launch(p), args.seconds, args.offline_frames, progress, alone(p)
            )
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
        "ratios": _ratios(model, shape_key(clip_shape), pipeline, naive, stages),
    }
    text = _render(report, [shape_key(s) for s in shapes], main_key)
    print(text)
    write_output(Path(args.json), lambda p: p.write_text(json.dumps(report, indent=2)))
    if args.markdown:
        write_output(Path(args.markdown), lambda p: p.write_text(text + "\n"))
    return 0


def _render(report: dict[str, Any], keys: list[str], main_key: str) -> str:
    m = report["machine"]
    parts = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}); "
        f"torch {m['versions']['torch']}, onnxruntime {m['versions']['onnxruntime']}, "
        f"openvino {m['versions']['openvino']}; {m['date']}",
        f"Weights: {report['weights']}. Frames: {report['frames']['measured']} from "
        f"{', '.join(report['frames']['clips'])}.",
        "",
        "Model only (batch 1, median of interleaved rounds):",
        "",
        model_table(report["model"], keys),
        "",
        f"Fidelity against fp32 eager at {main_key} (bar for a default: Pearson r >= "
        f"{report['fidelity_bar']['pearson_min']}); stand-in = synthetic weights with batch "
        "norm re-estimated on real frames:",
        "",
        fidelity_table(report["model"], main_key, report["standin_fidelity"]),
        "",
        "Pearson r (min) against fp32 eager at every input size, timed weights / stand-in:",
        "",
        pearson_table(report["model"], keys, report["standin_fidelity"]),
    ]
    for label, runs in report["pipeline"].items():
        parts += [
            "",
            f"Pipeline, {label}, on {report['pipeline_clip']['name']} "
            f"(network input {report['pipeline_clip']['network_shape']}):",
            "",
            pipeline_table(runs, report["naive"]),
        ]
    if report["stages"]:
        parts += ["", "CPU per frame around the model:", "", stage_table(report["stages"])]
    if report["ratios"]:
        parts += [
            "",
            "The pipeline against the same path's model-only time (clip shape) and against "
            "the CPU bound of the model plus the stages above:",
            "",
            ratio_table(report["ratios"]),
        ]
    if report["skipped"]:
        parts += ["", "Skipped: " + "; ".join(report["skipped"])]
    return "\n".join(parts)
