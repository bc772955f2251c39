"""``depthstream eval``: zero-shot metrics on an RGB-D folder, or the temporal stability of
depth on video clips; a table and JSON either way."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.capture.errors import SourceError
from depthstream.capture.file import FileSource
from depthstream.capture.image import read_image
from depthstream.stream.commands.common import config, write_output
from depthstream.stream.config import Config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import DepthEstimator, open_estimator
from depthstream.stream.evaluate import find_pairs, means, metric_score, read_depth, score, table
from depthstream.stream.outputs import check_writable
from depthstream.stream.stability import StabilityMeter, measure
from depthstream.stream.stability import table as stability_table


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "eval",
        parents=[common],
        help="zero-shot metrics on RGB + ground-truth depth, or temporal stability of clips",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--rgbd", metavar="DIR", help="folder with rgb/, depth/ and test_annotations.json"
    )
    what.add_argument(
        "--video",
        action="append",
        metavar="CLIP",
        help="a video file whose depth's frame-to-frame stability is measured (repeatable)",
    )
    p.add_argument(
        "--frames", type=int, metavar="N", help="--video: the first N frames of each clip"
    )
    p.add_argument(
        "--json",
        default="eval.json",
        metavar="PATH",
        help="where to write the results (default: eval.json)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    if args.frames is not None and args.frames < 2:
        raise UserError("--frames must be at least 2 (stability compares consecutive frames)")
    check_writable(Path(args.json), "--json")
    report = _videos(args, cfg) if args.video else _rgbd(args, cfg)
    write_output(Path(args.json), lambda p: p.write_text(json.dumps(report, indent=2)))
    return 0


def _rgbd(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    pairs = find_pairs(Path(args.rgbd))
    truths = [read_depth(pair) for pair in pairs]
    estimator = open_estimator(cfg.model, args.weights, still=True)
    rows = []
    for pair, truth in zip(pairs, truths, strict=True):
        rgb = read_image(pair.rgb)
        if rgb.shape[:2] != truth.shape:
            raise UserError(
                f"{pair.rgb} is {rgb.shape[1]}x{rgb.shape[0]} but its depth "
                f"{pair.depth} is {truth.shape[1]}x{truth.shape[0]}"
            )
        depth = estimator(rgb)
        row = {"name": pair.name, **score(depth.resized, truth)}
        if depth.metric:
            row.update(metric_score(depth.output_resized(), truth))
        rows.append(row)
    print(f"{cfg.model.name} on {args.rgbd} (AbsRel, d<1.25 after aligning scale and shift):")
    print(table(rows))
    _untrained_note(estimator)
    return {
        "rgbd": str(args.rgbd),
        "model": cfg.model.name,
        "untrained_weights": bool(estimator.stamp),
        "images": rows,
        "mean": means(rows),
    }


def _videos(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    sources = []
    try:
        for clip in args.video:
            sources.append(FileSource(clip))
    except SourceError as exc:
        for source in sources:
            source.close()
        raise UserError(str(exc)) from None
    estimator = open_estimator(cfg.model, args.weights)
    clips = {}
    for clip, source in zip(args.video, sources, strict=True):
        try:
            estimator.warm_up(*source.size)
            meter = StabilityMeter(cfg.normalize, cfg.temporal)
            clips[Path(clip).name] = measure(_raw_frames(source, estimator, args.frames), meter)
        finally:
            source.close()
        if clips[Path(clip).name]["variants"]["raw"]["pairs"] == 0:
            raise UserError(f"{clip}: fewer than two frames could be read")
    print(stability_table(clips))
    print(
        "(instability: mean |change| on static pixels; warp: flow-warped error; "
        "both in units of the depth's 2-98% range)"
    )
    _untrained_note(estimator)
    return {"model": cfg.model.name, "untrained_weights": bool(estimator.stamp), "clips": clips}


def _raw_frames(
    source: FileSource, estimator: DepthEstimator, limit: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i, frame in enumerate(source):
        if limit is not None and i == limit:
            return
        yield frame.rgb, estimator(frame.rgb).raw


def _untrained_note(estimator: DepthEstimator) -> None:
    if estimator.stamp:
        print(f"({estimator.stamp}: these numbers say nothing about MiDaS)")
