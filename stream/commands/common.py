"""What several commands share: config with flag overrides, writing output files."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from depthstream.stream.assembly import scenes_for
from depthstream.stream.config import (
    COLORMAPS,
    PRECISIONS,
    Config,
    default_config_path,
    load_config,
    with_overrides,
)
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Pipeline, Sink
from depthstream.stream.stats import RunStats

if TYPE_CHECKING:
    from depthstream.stream.sinks.foxglove_live import FoxgloveServer

log = logging.getLogger("depthstream")


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default: ./config.toml)")
    common.add_argument(
        "--weights",
        metavar="W",
        help="weights file, or 'synthetic' for untrained smoke-test weights",
    )
    common.add_argument("--colormap", choices=list(COLORMAPS), help="colour map (default: inferno)")
    common.add_argument(
        "--threads", type=int, metavar="N", help="inference CPU threads (0 = all cores)"
    )
    common.add_argument("--backend", choices=list(PRECISIONS), help="runtime (default: torch)")
    common.add_argument(
        "--precision",
        choices=sorted({p for ps in PRECISIONS.values() for p in ps}),
        help="fp32 (default, exact); bf16, int8, bf16-decoder or int8-decoder (encoder fp32, "
        "decoder in bf16 or int8) where the backend offers them",
    )
    common.add_argument(
        "--input-size", type=int, metavar="PX", help="network input's longer side (default 256)"
    )
    return common


def config(args: argparse.Namespace) -> Config:
    """The config file, with the command's flags (where it has them) on top."""
    return with_overrides(
        load_config(args.config),
        model={
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


def write_stats(path: str | None, summary: dict[str, Any], stats: RunStats) -> None:
    """The run's figures as JSON (what ``depthstream bench`` reads), when asked for, with
    the wall-clock time of the first output so start-up can be measured from outside."""
    if path:
        figures = {**summary, "first_output_unix": stats.first_output_unix}
        write_output(Path(path), lambda p: p.write_text(json.dumps(figures, indent=2)))


@dataclass
class Outputs:
    """The outputs with a connection or a file of their own a command was asked for: the ROS
    2 recording and the Foxglove server (they need depthstream[robot]), the RTSP push to a
    media server and the MQTT broker.  Checked before anything starts, opened once the
    pipelines exist; the one Foxglove server is opened with the first camera's sinks."""

    mcap: str | None = None
    foxglove: tuple[str, int] | None = None
    publish: str | None = None
    mqtt: str | None = None
    _foxglove_server: FoxgloveServer | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> Outputs:
        mcap, foxglove = getattr(args, "record_mcap", None), args.foxglove
        if mcap or foxglove:
            for module in ("mcap_ros2", "rosbags", "foxglove"):
                if importlib.util.find_spec(module) is None:
                    raise UserError(
                        f"robot outputs need the robot extra ({module} is missing): "
                        "pip install 'depthstream[robot]'"
                    )
        from depthstream.stream.sinks.mqtt import BrokerAddress
        from depthstream.stream.sinks.rtsp_publish import check_publish_url

        publish = args.publish or cfg.publish.url or None
        mqtt = args.mqtt or cfg.mqtt.url or None
        if publish:
            check_publish_url(publish)
        if mqtt:
            BrokerAddress.parse(mqtt)
        return cls(mcap, parse_address(foxglove) if foxglove else None, publish, mqtt)

    @property
    def robot(self) -> bool:
        return bool(self.mcap or self.foxglove)

    @property
    def readings(self) -> bool:
        """Whether an output needs the obstacle meter's reading of every frame."""
        return self.robot or bool(self.mqtt)

    def sinks(
        self, cfg: Config, pipeline: Pipeline, camera: str = "main", publish: str = ""
    ) -> list[Sink]:
        """The sinks for ``camera``, opened (the recording file, the listening server, the
        connections); ``publish``: the camera's own push URL, else ``{camera}`` in
        ``--publish`` is its name.  A camera not called "main" has its Foxglove topics
        under its name."""
        sinks: list[Sink] = []
        url = publish or (self.publish or "").replace("{camera}", camera)
        try:
            if self.robot:
                name = "" if camera == "main" else camera
                sinks += self._robot_sinks(cfg, pipeline.source.fps, name)
            if url:
                from depthstream.stream.sinks.rtsp_publish import RtspPublisher, check_publish_url

                check_publish_url(url)
                sinks.append(RtspPublisher(url, pipeline.source.fps, cfg.publish))
            if self.mqtt:
                from depthstream.stream.sinks.mqtt import MqttPublisher

                status = pipeline.source.status
                sinks.append(MqttPublisher(self.mqtt, camera, lambda: status.state, cfg.mqtt))
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        return sinks

    def _robot_sinks(self, cfg: Config, fps: float, name: str) -> list[Sink]:
        from depthstream.stream.sinks.foxglove_live import FoxgloveServer
        from depthstream.stream.sinks.ros2_mcap import McapRecorder

        scenes = scenes_for(cfg)
        for gap in scenes.gaps():
            log.warning("%s%s", f"{name}: " if name else "", gap)
        sinks: list[Sink] = []
        if self.foxglove:
            if self._foxglove_server is None:
                server = self._foxglove_server = FoxgloveServer(*self.foxglove)
                log.info("Foxglove: open ws://%s:%d (Open connection)", server.host, server.port)
            sinks.append(self._foxglove_server.camera(scenes, cfg.robot, name))
        if self.mcap:
            try:
                sinks.append(McapRecorder(self.mcap, fps, scenes, cfg.robot))
            except BaseException:
                for sink in sinks:
                    sink.close()
                raise
        return sinks


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


def parse_address(spec: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``[v6]:PORT``; port 0 = any free one), or a one-line error."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]") if sep else default_host
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"--foxglove {spec!r}: give PORT or HOST:PORT (port 0..65535)")
    return host or default_host, int(port)
