"""What several commands share: config with flag overrides, writing output files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from depthstream.stream.config import (
    BACKENDS,
    COLORMAPS,
    Config,
    default_config_path,
    load_config,
    with_overrides,
)
from depthstream.stream.errors import UserError
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS
from depthstream.stream.outputs import Outputs


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default: ./config.toml)")
    common.add_argument(
        "--model",
        choices=list(MODELS),
        help="; ".join(f"{s.name}: {s.title}, {s.licence}" for s in MODELS.values())
        + f" (default: {DEFAULT_MODEL}; the Depth Anything V2 Base/Large weights are not "
        "Apache-2.0 and are not offered)",
    )
    common.add_argument(
        "--weights",
        metavar="W",
        help="weights file, or 'synthetic' for untrained smoke-test weights",
    )
    common.add_argument("--colormap", choices=list(COLORMAPS), help="colour map (default: inferno)")
    common.add_argument(
        "--threads", type=int, metavar="N", help="inference CPU threads (0 = all cores)"
    )
    common.add_argument("--backend", choices=list(BACKENDS), help="runtime (default: torch)")
    common.add_argument(
        "--precision",
        choices=sorted({p for b in BACKENDS.values() for p in b.precisions}),
        help="fp32 (default, exact); bf16, int8, bf16-decoder or int8-decoder (encoder fp32, "
        "decoder in bf16 or int8) where the backend offers them",
    )
    common.add_argument(
        "--input-size",
        type=int,
        metavar="PX",
        help="network input size (default: the model's; MiDaS 256, the longer side; Depth "
        "Anything V2 518 for stills and 252 for video, the shorter side)",
    )
    return common


def config(args: argparse.Namespace) -> Config:
    """The config file, with the command's flags (where it has them) on top."""
    return with_overrides(
        load_config(args.config),
        model={
            "name": args.model,
            "threads": args.threads,
            "backend": args.backend,
            "precision": args.precision,
            "input_size": args.input_size,
        },
        render={"colormap": args.colormap, "layout": getattr(args, "layout", None)},
        web={"host": getattr(args, "host", None), "port": getattr(args, "port", None)},
        temporal={"stabilize": getattr(args, "stabilize", None)},
    )


def add_stabilize_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stabilize",
        action=argparse.BooleanOptionalAction,
        help="steady depth values over time ([temporal] stabilize, on by default)",
    )


def config_target(args: argparse.Namespace) -> Path:
    """The config file that saved settings (such as a calibration) go into."""
    return Path(args.config) if args.config else (default_config_path() or Path("config.toml"))


def write_output(path: Path, write: Callable[[Path], Any]) -> None:
    """Create the folder, write, and turn any failure into a one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = write(path)
    except (OSError, cv2.error) as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    if ok is False:
        raise UserError(f"cannot write {path}")


def add_stats_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats-json", metavar="PATH", help="write the run's figures here at exit")


def write_stats(path: str | None, figures: dict[str, Any]) -> None:
    """The run's figures as JSON (what ``depthstream bench`` reads), when asked for; they
    carry the wall-clock time of the first output, so start-up can be measured from outside."""
    if path:
        write_output(Path(path), lambda p: p.write_text(json.dumps(figures, indent=2)))


def add_network_outputs(p: argparse.ArgumentParser) -> None:
    """``--foxglove``, ``--publish`` and ``--mqtt``, the same on ``run`` and ``serve``."""
    p.add_argument(
        "--foxglove",
        metavar="[HOST:]PORT",
        help="serve a live Foxglove view (WebSocket) on this port (host default 127.0.0.1)",
    )
    p.add_argument(
        "--publish",
        metavar="URL",
        help="push the rendered view as H.264 to a media server: rtsp://HOST[:PORT]/PATH "
        "('{camera}' in it: the camera's name; [publish])",
    )
    p.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish obstacle readings and status: mqtt://[user:pass@]HOST[:PORT]/PREFIX ([mqtt])",
    )


def outputs_of(args: argparse.Namespace) -> Outputs:
    """The outputs named by ``run``'s or ``serve``'s flags (not yet checked)."""
    return Outputs(
        record=getattr(args, "record", None),
        record_depth=getattr(args, "record_depth", None),
        mcap=getattr(args, "record_mcap", None),
        foxglove=args.foxglove,
        publish=args.publish,
        mqtt=args.mqtt,
        stats_json=args.stats_json,
    )
