"""``depthstream image``: heat maps (and raw/resized depth) of still images."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from depthstream.capture.errors import SourceError
from depthstream.capture.image import read_image
from depthstream.stream.assembly import renderer_for, scenes_for
from depthstream.stream.commands.common import config, write_output
from depthstream.stream.config import LAYOUTS, Config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import open_estimator
from depthstream.stream.scene import Scenes

log = logging.getLogger("depthstream")


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("image", parents=[common], help="depth heat maps of still images")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files")
    p.add_argument("--out", metavar="OUT.png", help="heat map path (one input only)")
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        default=".",
        help="folder for <name>_depth.png and the .npy files (default: .)",
    )
    p.add_argument(
        "--raw",
        nargs="?",
        const="",
        metavar="RAW.npy",
        help="save the float32 network output (default name <name>_raw.npy)",
    )
    p.add_argument(
        "--depth",
        nargs="?",
        const="",
        metavar="DEPTH.npy",
        help="save float32 depth at image size (default name <name>_depth.npy)",
    )
    p.add_argument(
        "--ply",
        nargs="?",
        const="",
        metavar="OUT.ply",
        help="save a coloured point cloud (needs a calibration and [camera] intrinsics; "
        "default name <name>.ply)",
    )
    p.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the image")
    p.set_defaults(run=run)


def _target(flag: str | None, out_dir: Path, name: str) -> Path | None:
    if flag is None:
        return None
    return Path(flag) if flag else out_dir / name


def _scenes(cfg: Config) -> Scenes:
    """The calibration and the lens a point cloud needs, or a one-line error."""
    scenes = scenes_for(cfg)
    if scenes.calibration is None:
        raise UserError("--ply needs metric depth: calibrate first (depthstream calibrate)")
    scenes.projector.check()
    for gap in scenes.gaps():
        log.warning("%s", gap)
    return scenes


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    if len(args.inputs) > 1 and (args.out or args.raw or args.depth or args.ply):
        raise UserError(
            "with several inputs use --out-dir (and --raw/--depth/--ply without a path)"
        )
    scenes = _scenes(cfg) if args.ply is not None else None
    if not any(Path(name).is_file() for name in args.inputs):
        raise UserError("none of the inputs exists: " + ", ".join(args.inputs))
    estimator = open_estimator(cfg.model, args.weights)
    out_dir = Path(args.out_dir)
    done = 0
    for name in args.inputs:
        try:
            rgb = read_image(name)
        except SourceError as exc:
            log.error("skipped: %s", exc)
            continue
        stem = Path(name).stem
        depth = estimator(rgb)
        # A renderer per image: each still gets its own colour range.
        view = renderer_for(cfg, estimator).render(rgb, depth).image
        out = Path(args.out) if args.out else out_dir / f"{stem}_depth.png"
        write_output(out, lambda p, v=view: cv2.imwrite(str(p), v))
        for target, array in (
            (_target(args.raw, out_dir, f"{stem}_raw.npy"), depth.raw),
            (_target(args.depth, out_dir, f"{stem}_depth.npy"), depth.depth),
        ):
            if target is not None:
                write_output(target, lambda p, a=array: np.save(p, a.astype(np.float32)))
        if scenes is not None:
            scene = scenes.make(done, time.time(), rgb, depth.depth, scenes.calibration)
            ply = _target(args.ply, out_dir, f"{stem}.ply")
            write_output(ply, scene.write_ply)
        log.info("%s -> %s", name, out)
        done += 1
    if done == 0:
        raise UserError("no input could be processed")
    return 0
