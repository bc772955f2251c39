"""``depthstream calibrate``: fit metres from points of known distance, save to config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from itertools import islice
from pathlib import Path

import numpy as np

from capture.image import read_image
from capture.spec import open_source
from stream.calibration import fit, sample_points
from stream.commands.common import config, config_target
from stream.config import write_section
from stream.errors import UserError
from stream.estimator import open_estimator

log = logging.getLogger("depthstream")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _point(text: str) -> tuple[float, float, float]:
    try:
        x, y, metres = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,METRES") from None
    return x, y, metres


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "calibrate",
        parents=[common],
        help="fit metric distances from known points; saves [calibration]",
    )
    p.add_argument("source", metavar="SOURCE", help="a still image, or any source run accepts")
    p.add_argument(
        "--point",
        action="append",
        type=_point,
        default=[],
        metavar="X,Y,METRES",
        help="a pixel (in the image/frame) and its measured distance; 2 or more",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=10,
        metavar="N",
        help="frames of a video source to average over (default: 10)",
    )
    p.add_argument("--radius", type=int, metavar="PX", help="half-size of each point's window")
    p.set_defaults(run=run)


def _depth_maps(spec: str, cfg, estimator, frames: int) -> list[np.ndarray]:
    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        return [estimator(read_image(spec)).depth]
    source = open_source(spec, cfg, live_file=False)
    try:
        return [estimator(frame.rgb).depth for frame in islice(source, frames)]
    finally:
        source.close()


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    target = config_target(args)
    if len(args.point) < 2:
        raise UserError("calibration needs at least 2 --point X,Y,METRES")
    radius = cfg.calibration.radius if args.radius is None else args.radius
    estimator, _ = open_estimator(cfg, args.weights)
    maps = _depth_maps(args.source, cfg, estimator, max(args.frames, 1))
    if not maps:
        raise UserError(f"{args.source}: no frame could be read")
    xy = [(x, y) for x, y, _ in args.point]
    values = np.median([sample_points(depth, xy, radius) for depth in maps], axis=0)
    result = fit(values, np.array([m for _, _, m in args.point]))
    section = dataclasses.replace(
        cfg.calibration,
        points=[list(p) for p in args.point],
        radius=radius,
        scale=result.scale,
        shift=result.shift,
        rms_error_m=round(result.rms_error_m, 4),
    )
    try:
        write_section(target, "calibration", section)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(
        f"calibrated on {result.used} point(s) ({result.rejected} rejected as outliers) "
        f"over {len(maps)} frame(s): scale {result.scale:.6g}, shift {result.shift:.6g}, "
        f"rms error {result.rms_error_m:.3f} m; saved to {target} [calibration]"
    )
    return 0
