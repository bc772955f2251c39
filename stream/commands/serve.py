"""``depthstream serve``: live depth to browsers over WebRTC, plus the REST API.

The command line is the one place in ``stream`` that reaches into ``web``:
it imports the server only when this command runs, so no other command
loads aiohttp or aiortc.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack

from depthstream.capture.sample import SAMPLE_NAME
from depthstream.stream.assembly import open_cameras
from depthstream.stream.commands.common import (
    add_network_outputs,
    add_stabilize_option,
    add_stats_option,
    config,
    config_target,
    outputs_of,
    write_stats,
)
from depthstream.stream.config import LAYOUTS, CameraEntry, Config, check_camera_names
from depthstream.stream.errors import UserError
from depthstream.stream.outputs import check_port
from depthstream.stream.stats import closing_lines

log = logging.getLogger("depthstream")


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "serve", parents=[common], help="serve live depth to browsers (WebRTC) and a REST API"
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help=f"as for run (default: {SAMPLE_NAME}); files loop; served as camera 'main'",
    )
    p.add_argument(
        "--camera",
        action="append",
        metavar="NAME=SOURCE",
        help="a camera of several sharing one model (repeatable; or [[cameras]] in config)",
    )
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: 8080)")
    p.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    add_network_outputs(p)
    add_stats_option(p)
    add_stabilize_option(p)
    p.set_defaults(run=run)


def cameras_of(args: argparse.Namespace, cfg: Config) -> list[CameraEntry]:
    """``--camera NAME=SOURCE`` flags, else ``[[cameras]]``, else SOURCE as camera ``main``."""
    if args.camera and args.source:
        raise UserError("give either SOURCE or --camera NAME=SOURCE, not both")
    if args.camera:
        entries = []
        for spec in args.camera:
            name, sep, source = spec.partition("=")
            if not sep or not source:
                raise UserError(f"--camera {spec!r}: give NAME=SOURCE")
            entries.append(CameraEntry(name, source))
        check_camera_names([e.name for e in entries])
        return entries
    if cfg.cameras and not args.source:
        return cfg.cameras
    return [CameraEntry("main", args.source or SAMPLE_NAME)]


def run(args: argparse.Namespace) -> int:
    from depthstream.web.server import serve

    cfg = config(args)
    outputs = outputs_of(args)
    entries = cameras_of(args, cfg)
    check_port(cfg.web.host, cfg.web.port, "serve")
    pipelines = open_cameras(
        cfg, entries, weights=args.weights, obstacles=True, overlay=False, outputs=outputs
    )
    with ExitStack() as stack:
        for pipeline in pipelines.values():
            stack.enter_context(pipeline)
        try:
            serve(pipelines, cfg, config_target(args))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}"
            ) from None
    summaries = {name: p.summary() for name, p in pipelines.items()}
    if len(summaries) == 1:
        (figures,) = summaries.values()
    else:
        firsts = [s["first_output_unix"] for s in summaries.values()]
        figures = {
            "cameras": summaries,
            "first_output_unix": min(filter(None, firsts), default=None),
        }
    write_stats(args.stats_json, figures)
    for name, summary in summaries.items():
        for line in closing_lines(summary, []):
            log.info("%s%s", f"{name}: " if len(summaries) > 1 else "", line)
    for path in outputs.written():
        log.info("wrote %s", path)
    return 0
