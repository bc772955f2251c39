"""The ``depthstream`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from capture.file import FileSource
from capture.image import read_image
from capture.sample import SAMPLE_NAME, SAMPLE_PATH
from stream.colormap import COLORMAPS, Colorizer
from stream.config import LAYOUTS, Config, load_config, with_overrides
from stream.errors import UserError
from stream.estimator import DepthEstimator
from stream.model.weights import choose_weights, load_model
from stream.normalizer import EmaNormalizer
from stream.pipeline import Pipeline
from stream.render import UNTRAINED_STAMP, DepthRenderer
from stream.sinks.mp4 import Mp4Recorder

log = logging.getLogger("depthstream")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthstream", description="Real-time monocular depth (MiDaS v2.1 small) on the CPU."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default: ./config.toml)")
    common.add_argument(
        "--weights",
        metavar="W",
        help="weights file, or 'synthetic' for untrained smoke-test weights",
    )
    common.add_argument("--colormap", choices=list(COLORMAPS), help="colour map (default: inferno)")
    common.add_argument(
        "--threads", type=int, metavar="N", help="torch CPU threads (0 = all cores)"
    )

    image = commands.add_parser("image", parents=[common], help="depth heat maps of still images")
    image.add_argument("inputs", nargs="+", metavar="IN", help="image files")
    image.add_argument("--out", metavar="OUT.png", help="heat map path (one input only)")
    image.add_argument(
        "--out-dir",
        metavar="DIR",
        default=".",
        help="folder for <name>_depth.png and the .npy files (default: .)",
    )
    image.add_argument(
        "--raw",
        nargs="?",
        const="",
        metavar="RAW.npy",
        help="save the float32 network output; without a path: <out-dir>/<name>_raw.npy",
    )
    image.add_argument(
        "--depth",
        nargs="?",
        const="",
        metavar="DEPTH.npy",
        help="save float32 depth at image size; without a path: <out-dir>/<name>_depth.npy",
    )
    image.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the image")

    run = commands.add_parser("run", parents=[common], help="depth video from a file or 'sample'")
    run.add_argument("source", metavar="SOURCE", help=f"video file, or '{SAMPLE_NAME}'")
    run.add_argument(
        "--record", metavar="OUT.mp4", help="H.264 MP4 to write (default: <source name>_depth.mp4)"
    )
    run.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    run.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    return parser


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    return with_overrides(
        cfg,
        model={"threads": args.threads},
        render={"colormap": args.colormap, "layout": args.layout},
    )


def _estimator(cfg: Config, weights: str | None) -> tuple[DepthEstimator, str | None]:
    """The estimator, and the stamp every rendered image must carry (if any)."""
    torch.set_num_threads(cfg.model.threads or os.cpu_count() or 1)
    loaded = load_model(choose_weights(weights, cfg))
    stamp = UNTRAINED_STAMP if loaded.choice.synthetic else None
    return DepthEstimator(loaded, cfg.cache_dir()), stamp


def _renderer(cfg: Config, stamp: str | None) -> DepthRenderer:
    n = cfg.normalize
    return DepthRenderer(
        EmaNormalizer(n.low_percentile, n.high_percentile, n.ema),
        Colorizer(cfg.render.colormap),
        cfg.render.layout,
        stamp,
    )


def _npy_target(flag: str | None, out_dir: Path, stem: str, suffix: str) -> Path | None:
    if flag is None:
        return None
    return Path(flag) if flag else out_dir / f"{stem}_{suffix}.npy"


def _write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = write(path)
    except (OSError, cv2.error) as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    if ok is False:
        raise UserError(f"cannot write {path}")


def cmd_image(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if len(args.inputs) > 1 and (args.out or args.raw or args.depth):
        raise UserError("with several inputs use --out-dir (and --raw/--depth without a path)")
    if not any(Path(name).is_file() for name in args.inputs):
        raise UserError("none of the inputs exists: " + ", ".join(args.inputs))
    estimator, stamp = _estimator(cfg, args.weights)
    out_dir = Path(args.out_dir)
    done = 0
    for name in args.inputs:
        try:
            rgb = read_image(name)
        except UserError as exc:
            log.error("skipped: %s", exc)
            continue
        stem = Path(name).stem
        depth = estimator(rgb)
        view = _renderer(cfg, stamp).render(rgb, depth)
        out = Path(args.out) if args.out else out_dir / f"{stem}_depth.png"
        _write(out, lambda p, v=view: cv2.imwrite(str(p), v))
        for target, array in (
            (_npy_target(args.raw, out_dir, stem, "raw"), depth.raw),
            (_npy_target(args.depth, out_dir, stem, "depth"), depth.depth),
        ):
            if target is not None:
                _write(target, lambda p, a=array: np.save(p, a.astype(np.float32)))
        log.info("%s -> %s", name, out)
        done += 1
    if done == 0:
        raise UserError("no input could be processed")
    return 0


def _open_source(spec: str) -> FileSource:
    return FileSource(SAMPLE_PATH if spec == SAMPLE_NAME else spec)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.frames is not None and args.frames < 1:
        raise UserError("--frames must be at least 1")
    source = _open_source(args.source)
    estimator, stamp = _estimator(cfg, args.weights)
    estimator.warm_up(*source.size)
    stem = Path(args.source).stem
    recorder = Mp4Recorder(
        args.record or f"{stem}_depth.mp4", source.fps, cfg.output.crf, cfg.output.preset
    )
    total = min(filter(None, (source.frame_count, args.frames)), default=None)
    bar = tqdm(total=total, unit="frame", desc="depth", file=sys.stderr, dynamic_ncols=True)
    pipeline = Pipeline(
        source,
        estimator,
        _renderer(cfg, stamp),
        sinks=[lambda _f, _d, view: recorder.write(view), lambda *_: bar.update()],
        max_frames=args.frames,
    )
    try:
        stats = pipeline.run()
    finally:
        bar.close()
        recorder.close()
        source.close()
    if source.corrupt_packets:
        log.warning(
            "%d undecodable packet(s) in %s were skipped", source.corrupt_packets, args.source
        )
    if stats.frames_processed == 0:
        raise UserError(f"{args.source}: no frame could be decoded")
    log.info("%d frames -> %s", stats.frames_processed, recorder.path)
    return 0


COMMANDS = {"image": cmd_image, "run": cmd_run}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="depthstream: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"depthstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
