"""``depthstream bench``: every runtime side by side, then the whole pipeline.

Only the flags live here: the benchmark itself (:mod:`stream.bench.suite`) is
imported when the command runs, so no other command loads it.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from depthstream.stream.commands.common import config
from depthstream.stream.model.registry import MODELS


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "bench", parents=[common], help="measure every runtime and the pipeline"
    )
    p.add_argument(
        "--media", metavar="DIR", help="folder of video clips to take frames from (default: sample)"
    )
    p.add_argument("--paths", metavar="LIST", help="backend:precision,... (default: all available)")
    p.add_argument(
        "--sizes", metavar="LIST", help="square input sizes (default: each model's bench sizes)"
    )
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
    p.add_argument(
        "--cameras",
        default="1,2,4",
        metavar="LIST",
        help="camera counts to serve at once, in one process and in several ('' to skip)",
    )
    p.add_argument(
        "--cameras-only",
        action="store_true",
        help="measure only the cameras; with --markdown, replace that section of the page",
    )
    p.add_argument(
        "--models",
        default=",".join(MODELS),
        metavar="LIST",
        help="models to time side by side, one per network ('' to skip)",
    )
    p.add_argument(
        "--models-only",
        action="store_true",
        help="measure only the models side by side; with --markdown, replace that section",
    )
    p.add_argument("--offline-frames", type=int, default=150, metavar="N")
    p.add_argument("--no-standin", action="store_true", help="skip stand-in fidelity")
    p.add_argument("--json", default="bench.json", metavar="PATH", help="(default: bench.json)")
    p.add_argument(
        "--markdown",
        metavar="PATH",
        help="also write the tables as a document (docs/performance.md)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from depthstream.stream.bench.suite import BenchOptions, run_bench

    options = BenchOptions(
        media=args.media,
        paths=args.paths,
        sizes=args.sizes,
        rounds=args.rounds,
        per_round=args.per_round,
        frames_per_clip=args.frames_per_clip,
        pipeline_paths=args.pipeline_paths,
        seconds=args.seconds,
        cameras=args.cameras,
        cameras_only=args.cameras_only,
        offline_frames=args.offline_frames,
        standin=not args.no_standin,
        models=args.models,
        models_only=args.models_only,
        json=args.json,
        markdown=args.markdown,
        command=shlex.join(["depthstream", *sys.argv[1:]]),
    )
    return run_bench(config(args), args.weights, options)
