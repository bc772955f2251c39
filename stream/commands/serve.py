"""``depthstream serve``: live depth to browsers over WebRTC, plus the REST API."""

from __future__ import annotations

import argparse

from capture.sample import SAMPLE_NAME
from capture.spec import open_source
from stream.commands.common import add_stats_option, config, config_target, write_stats
from stream.config import LAYOUTS
from stream.errors import UserError
from stream.estimator import open_estimator
from stream.pipeline import Pipeline
from stream.readout import ObstacleMeter
from stream.render import DepthRenderer


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
    add_stats_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from web.server import serve
    from web.state import ServerState

    cfg = config(args)
    source = open_source(args.source, cfg, live_file=True, loop=True)
    try:
        estimator, stamp = open_estimator(cfg, args.weights)
        estimator.warm_up(*source.size)
    except BaseException:
        source.close()
        raise
    meter = ObstacleMeter.from_config(cfg)
    pipeline = Pipeline(
        source,
        estimator,
        DepthRenderer.from_config(cfg, stamp),
        [],
        queue_size=cfg.pipeline.queue_size,
        overlay=False,
        log_interval=cfg.output.log_interval,
        readout=meter,
    )
    config_path = config_target(args)
    state = ServerState(
        cfg,
        pipeline,
        estimator,
        lambda: DepthRenderer.from_config(cfg, stamp),
        meter=meter,
        config_path=config_path,
    )
    try:
        serve(state, cfg.web.host, cfg.web.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror}") from None
    finally:
        pipeline.join()
    write_stats(args.stats_json, pipeline.summary(), pipeline.stats)
    return 0
