"""``depthstream run``: live depth in a window (or headless), optionally recorded."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from contextlib import ExitStack
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from depthstream.capture.sample import SAMPLE_NAME
from depthstream.stream.assembly import open_pipeline
from depthstream.stream.commands.common import (
    add_network_outputs,
    add_stabilize_option,
    add_stats_option,
    config,
    outputs_of,
    write_stats,
)
from depthstream.stream.config import LAYOUTS
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.scene import Scenes
from depthstream.stream.sinks.progress import ProgressBar
from depthstream.stream.sinks.window import WindowDisplay, check_display
from depthstream.stream.stats import closing_lines

log = logging.getLogger("depthstream")


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "run", parents=[common], help="live depth from a camera, stream or file"
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="camera index or /dev/videoN, rtsp:// or http(s):// URL, video file, "
        f"or '{SAMPLE_NAME}'",
    )
    p.add_argument(
        "--display",
        choices=("window", "none"),
        default="window",
        help="show an OpenCV window (default) or run headless",
    )
    p.add_argument("--record", metavar="OUT.mp4", help="record what is shown as H.264 MP4")
    p.add_argument(
        "--record-depth",
        metavar="OUT.mkv",
        help="record the (stabilized) depth losslessly: FFV1 16-bit, frame size, "
        "millimetres when calibrated; unit and scale in the file and OUT.json",
    )
    p.add_argument(
        "--record-mcap",
        metavar="OUT.mcap",
        help="record ROS 2 messages (camera image, depth, camera info, point cloud, "
        "laser scan, obstacles) to an MCAP file; needs depthstream[robot]",
    )
    add_network_outputs(p)
    p.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    p.add_argument(
        "--mode",
        choices=("live", "offline"),
        help="files only: pace at the file's frame rate (live) or process every frame "
        "as fast as possible (offline; default with --display none --record)",
    )
    p.add_argument("--loop", action="store_true", help="files only: start again at the end")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    add_stats_option(p)
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR",
        default=".",
        help="where the 's' key saves snapshots (default: .)",
    )
    p.add_argument(
        "--obstacles",
        action="store_true",
        help="show the nearest obstacle per sector ([obstacles], [calibration])",
    )
    p.add_argument("--no-overlay", action="store_true", help="no text over the view")
    add_stabilize_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    if args.frames is not None and args.frames < 1:
        raise UserError("--frames must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be positive")
    window = args.display == "window"
    if window:
        check_display()
    outputs = outputs_of(args)
    recording = bool(args.record or args.record_depth or args.record_mcap)
    offline = args.mode == "offline" if args.mode else (not window and recording)
    scenes = Scenes.of(cfg.camera, cfg.geometry, cfg.calibration)
    display = WindowDisplay(Path(args.snapshot_dir), scenes) if window else None
    with open_pipeline(
        cfg,
        args.source,
        weights=args.weights,
        offline=offline,
        loop=args.loop,
        obstacles=args.obstacles,
        overlay=not args.no_overlay,
        max_frames=args.frames,
        outputs=outputs,
    ) as pipeline:
        if display is not None:
            pipeline.add_sink(display)
        _play(pipeline, args, display, offline)
    summary = pipeline.summary()
    write_stats(args.stats_json, summary)
    for line in closing_lines(summary, outputs.written()):
        log.info("%s", line)
    if summary["frames_processed"] == 0:
        raise UserError(f"{args.source}: no frame could be processed")
    return 0


def _play(
    pipeline: Pipeline, args: argparse.Namespace, display: WindowDisplay | None, offline: bool
) -> None:
    """Run until the source ends, the frame or time limit, a signal or the window closes;
    offline, with a progress bar that log lines print above instead of through."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.stop())
    timer = threading.Timer(args.duration, pipeline.stop) if args.duration else None
    with ExitStack() as stack:
        if offline:
            length = pipeline.source_info().frame_count
            total = min(filter(None, (length, args.frames)), default=None)
            pipeline.add_sink(ProgressBar(total))
            stack.enter_context(logging_redirect_tqdm())
        if timer:
            timer.start()
            stack.callback(timer.cancel)
        if display is not None:
            pipeline.start()
            display.run(pipeline)
        else:
            pipeline.run()
