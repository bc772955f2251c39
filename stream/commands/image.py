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
from depthstream.stream.assembly import renderer_for
from depthstream.stream.commands.common import config, write_output
from depthstream.stream.config import LAYOUTS, Config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import open_estimator
from depthstream.stream.outputs import check_writable
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
    scenes = Scenes.of(cfg.camera, cfg.geometry, cfg.calibration)
    if scenes.calibration is None:
        raise UserError("--ply needs metric depth: calibrate first (depthstream calibrate)")
    scenes.projector.check()
    for gap in scenes.gaps():
        log.warning("%s", gap)
    return scenes


def _outputs(args: argparse.Namespace, name: str) -> dict[str, Path | None]:
    """Where one input's heat map, arrays and point cloud go, by flag (None: not asked)."""
    out_dir, stem = Path(args.out_dir), Path(name).stem
    return {
        "--out": Path(args.out) if args.out else out_dir / f"{stem}_depth.png",
        "--raw": _target(args.raw, out_dir, f"{stem}_raw.npy"),
        "--depth": _target(args.depth, out_dir, f"{stem}_depth.npy"),
        "--ply": _target(args.ply, out_dir, f"{stem}.ply"),
    }


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    if len(args.inputs) > 1 and (args.out or args.raw or args.depth or args.ply):
        raise UserError(
            "with several inputs use --out-dir (and --raw/--depth/--ply without a path)"
        )
    scenes = _scenes(cfg) if args.ply is not None else None
    inputs = [name for name in args.inputs if Path(name).is_file()]
    if not inputs:
        raise UserError("none of the inputs exists: " + ", ".join(args.inputs))
    for name in inputs:
        for flag, path in _outputs(args, name).items():
            if path is not None:
                check_writable(path, flag)
    estimator = open_estimator(cfg.model, args.weights, still=True)
    done = 0
    for name in args.inputs:
        try:
            rgb = read_image(name)
        except SourceError as exc:
            log.error("skipped: %s", exc)
            continue
        depth = estimator(rgb)
        # A renderer per image: each still gets its own colour range.
        view = renderer_for(cfg, estimator).render(rgb, depth).image
        targets = _outputs(args, name)
        write_output(targets["--out"], lambda p, v=view: cv2.imwrite(str(p), v))
        # What the network itself gives (metres for a metric head), as the official code does.
        for flag, array in (("--raw", depth.output), ("--depth", depth.output_resized())):
            if targets[flag] is not None:
                write_output(targets[flag], lambda p, a=array: np.save(p, a.astype(np.float32)))
        if scenes is not None:
            scene = scenes.make(done, time.time(), rgb, depth.resized, scenes.calibration)
            write_output(targets["--ply"], scene.write_ply)
        log.info("%s -> %s", name, targets["--out"])
        done += 1
    if done == 0:
        raise UserError("no input could be processed")
    return 0
