"""``depthstream serve``: live depth to browsers over WebRTC, plus the REST API.

The command line is the one place in ``stream`` that reaches into ``web``:
it imports the server only when this command runs, so no other command
loads aiohttp or aiortc.
"""

from __future__ import annotations

import argparse

from capture.sample import SAMPLE_NAME
from stream.assembly import open_pipeline
from stream.commands.common import (
    Outputs,
    add_network_outputs,
    add_stabilize_option,
    add_stats_option,
    config,
    config_target,
    write_stats,
)
from stream.config import LAYOUTS
from stream.errors import UserError


def register(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "serve", parents=[common], help="serve live depth to browsers (WebRTC) and a REST API"
    )
    p.add_argument(
        "source",
        nargs="?",
        default=SAMPLE_NAME,
        metavar="SOURCE",
        help=f"as for run (default: {SAMPLE_NAME}); files loop",
    )
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: 8080)")
    p.add_argument("--layout", choices=LAYOUTS, help="heat map alone or beside the original")
    add_network_outputs(p)
    add_stats_option(p)
    add_stabilize_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from web.server import serve

    cfg = config(args)
    outputs = Outputs.from_args(args, cfg)
    pipeline = open_pipeline(
        cfg, args.source, weights=args.weights, loop=True, obstacles=True, overlay=False
    )
    with pipeline:
        for sink in outputs.sinks(cfg, pipeline):
            pipeline.add_sink(sink)
        try:
            serve(pipeline, cfg, config_target(args))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}"
            ) from None
    write_stats(args.stats_json, pipeline.summary(), pipeline.stats)
    return 0
