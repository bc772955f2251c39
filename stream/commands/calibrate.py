"""``depthstream calibrate``: fit metres from points of known distance, save to config."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from depthstream.capture.image import read_image
from depthstream.stream.assembly import open_pipeline
from depthstream.stream.calibration import calibrate, describe, save
from depthstream.stream.commands.common import add_stabilize_option, config, config_target
from depthstream.stream.config import Config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import open_estimator
from depthstream.stream.outputs import check_writable
from depthstream.stream.pipeline import Result
from depthstream.stream.stabilizer import Anchor, grey_at

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
    add_stabilize_option(p)
    p.set_defaults(run=run)


class _DepthMaps:
    """Sink: keeps each processed frame's depth map."""

    def __init__(self) -> None:
        self.maps: list[np.ndarray] = []

    def write(self, result: Result) -> None:
        self.maps.append(result.depth.resized)

    def close(self) -> None:
        """Nothing to release."""


def _depth_maps(
    spec: str, cfg: Config, weights: str | None, frames: int
) -> tuple[list[np.ndarray], Anchor | None]:
    """The frame-size depth maps to fit on, and the frame they are in the space of (None
    when stabilization is off: then no later frame can be brought back into it)."""
    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        rgb = read_image(spec)
        depth = open_estimator(cfg.model, weights, still=True)(rgb)
        anchor = Anchor(grey_at(rgb, depth.raw.shape), depth.raw)
        return [depth.resized], anchor if cfg.temporal.stabilize else None
    maps = _DepthMaps()
    with open_pipeline(
        cfg, spec, weights=weights, offline=True, overlay=False, max_frames=frames
    ) as pipeline:
        pipeline.add_sink(maps)
        pipeline.run()
    return maps.maps, pipeline.anchor()


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    target = config_target(args)
    metric = cfg.model.spec.metric
    least = 1 if metric else 2
    if len(args.point) < least:
        raise UserError(f"calibration needs at least {least} --point X,Y,METRES")
    check_writable(target, "--config")
    radius = cfg.calibration.radius if args.radius is None else args.radius
    maps, anchor = _depth_maps(args.source, cfg, args.weights, max(args.frames, 1))
    if not maps:
        raise UserError(f"{args.source}: no frame could be read")
    result = calibrate(maps, args.point, radius, metric)
    save(target, cfg.calibration, args.point, radius, result, anchor)
    print(
        f"calibrated over {len(maps)} frame(s) on {describe(result)}; "
        f"saved to {target} [calibration]"
    )
    return 0
