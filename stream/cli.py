"""The ``depthstream`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from capture.image import read_image
from capture.sample import SAMPLE_NAME
from capture.spec import open_source
from stream.colormap import COLORMAPS, Colorizer
from stream.config import LAYOUTS, Config, load_config, with_overrides
from stream.errors import UserError
from stream.estimator import DepthEstimator
from stream.model.weights import choose_weights, load_model
from stream.normalizer import EmaNormalizer
from stream.pipeline import Pipeline, Sink
from stream.render import UNTRAINED_STAMP, DepthRenderer
from stream.sinks.mp4 import Mp4Recorder
from stream.sinks.window import WindowDisplay, check_display

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

    run = commands.add_parser(
        "run", parents=[common], help="live depth from a camera, stream or file"
    )
    run.add_argument(
        "source",
        metavar="SOURCE",
        help=f"camera index or /dev/videoN, rtsp:// or http(s):// URL, video file, "
        f"or '{SAMPLE_NAME}'",
    )
    run.add_argument(
        "--display",
        choices=("window", "none"),
        default="window",
        help="show an OpenCV window (default) or run headless",
    )
    run.add_argument("--record", metavar="OUT.mp4", help="record what is shown as H.264 MP4")
    run.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    run.add_argument(
        "--mode",
        choices=("live", "offline"),
        help="files only: pace at the file's frame rate (live) or process every "
        "frame as fast as possible (offline; default with --display none "
        "--record)",
    )
    run.add_argument("--loop", action="store_true", help="files only: start again at the end")
    run.add_argument("--frames", type=int, metavar="N", help="stop after N processed frames")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    run.add_argument("--stats-json", metavar="PATH", help="write the run's figures here at exit")
    run.add_argument(
        "--snapshot-dir",
        metavar="DIR",
        default=".",
        help="where the 's' key saves snapshots (default: .)",
    )
    run.add_argument("--no-overlay", action="store_true", help="no fps/latency text on the view")
    serve = commands.add_parser(
        "serve", parents=[common], help="serve live depth to browsers (WebRTC) and a REST API"
    )
    serve.add_argument(
        "source",
        nargs="?",
        default=SAMPLE_NAME,
        metavar="SOURCE",
        help=f"as for run (default: {SAMPLE_NAME}); files loop",
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: 8080)")
    serve.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    return parser


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    return with_overrides(
        cfg,
        model={"threads": args.threads},
        render={"colormap": args.colormap, "layout": getattr(args, "layout", None)},
        web={"host": getattr(args, "host", None), "port": getattr(args, "port", None)},
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


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.frames is not None and args.frames < 1:
        raise UserError("--frames must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    window = args.display == "window"
    if window:
        check_display()
    offline = args.mode == "offline" if args.mode else (not window and bool(args.record))
    source = open_source(args.source, cfg, live_file=not offline, loop=args.loop)
    try:
        estimator, stamp = _estimator(cfg, args.weights)
        estimator.warm_up(*source.size)
        recorder = (
            Mp4Recorder(args.record, source.fps, cfg.output.crf, cfg.output.preset)
            if args.record
            else None
        )
    except BaseException:
        source.close()
        raise
    sinks: list[Sink] = []
    if recorder is not None:
        if offline:
            sinks.append(lambda r: recorder.write(r.view))
        else:
            start = time.monotonic()
            sinks.append(lambda r: recorder.write(r.view, r.frame.captured_at - start))
    bar = None
    if offline:
        total = min(filter(None, (source.frame_count, args.frames)), default=None)
        bar = tqdm(total=total, unit="frame", desc="depth", file=sys.stderr, dynamic_ncols=True)
        sinks.append(lambda _r: bar.update())
    pipeline = Pipeline(
        source,
        estimator,
        _renderer(cfg, stamp),
        sinks,
        queue_size=cfg.pipeline.queue_size,
        max_frames=args.frames,
        overlay=not args.no_overlay,
        log_interval=cfg.output.log_interval,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.stop())
    timer = threading.Timer(args.duration, pipeline.stop) if args.duration else None
    try:
        if timer:
            timer.start()
        if window:
            pipeline.start()
            WindowDisplay(Path(args.snapshot_dir)).run(pipeline)
        else:
            pipeline.run()
    finally:
        if timer:
            timer.cancel()
        pipeline.join()
        if bar is not None:
            bar.close()
        if recorder is not None:
            recorder.close()
    summary = pipeline.summary()
    log.info("%s", summary)
    if args.stats_json:
        _write(Path(args.stats_json), lambda p: p.write_text(json.dumps(summary, indent=2)))
    if summary["frames_processed"] == 0:
        raise UserError(f"{args.source}: no frame could be processed")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from web.server import serve
    from web.state import ServerState

    cfg = _config(args)
    source = open_source(args.source, cfg, live_file=True, loop=True)
    try:
        estimator, stamp = _estimator(cfg, args.weights)
        estimator.warm_up(*source.size)
    except BaseException:
        source.close()
        raise
    pipeline = Pipeline(
        source,
        estimator,
        _renderer(cfg, stamp),
        [],
        queue_size=cfg.pipeline.queue_size,
        overlay=False,
        log_interval=cfg.output.log_interval,
    )
    state = ServerState(cfg, pipeline, estimator, lambda: _renderer(cfg, stamp))
    try:
        serve(state, cfg.web.host, cfg.web.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}") from None
    finally:
        pipeline.join()
    return 0


COMMANDS = {"image": cmd_image, "run": cmd_run, "serve": cmd_serve}


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
