"""``depthstream eval``: AbsRel and delta1 on an RGB-D folder, as a table and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from capture.image import read_image
from stream.commands.common import config, write_output
from stream.errors import UserError
from stream.estimator import open_estimator
from stream.evaluate import find_pairs, read_depth, score, table


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "eval", parents=[common], help="zero-shot metrics on RGB + ground-truth depth"
    )
    p.add_argument(
        "--rgbd",
        required=True,
        metavar="DIR",
        help="folder with rgb/, depth/ and test_annotations.json",
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
    pairs = find_pairs(Path(args.rgbd))
    truths = [read_depth(pair) for pair in pairs]
    estimator = open_estimator(cfg.model, args.weights)
    rows = []
    for pair, truth in zip(pairs, truths, strict=True):
        rgb = read_image(pair.rgb)
        if rgb.shape[:2] != truth.shape:
            raise UserError(
                f"{pair.rgb} is {rgb.shape[1]}x{rgb.shape[0]} but its depth "
                f"{pair.depth} is {truth.shape[1]}x{truth.shape[0]}"
            )
        rows.append({"name": pair.name, **score(estimator(rgb).depth, truth)})
    print(table(rows))
    if estimator.stamp:
        print(f"({estimator.stamp}: these numbers say nothing about MiDaS)")
    report = {
        "rgbd": str(args.rgbd),
        "untrained_weights": bool(estimator.stamp),
        "images": rows,
        "mean": {key: float(np.mean([r[key] for r in rows])) for key in ("abs_rel", "delta1")},
    }
    write_output(Path(args.json), lambda p: p.write_text(json.dumps(report, indent=2)))
    return 0
