"""Every output a run can have, checked before anything starts and opened by the assembly.

Files (the MP4 and depth recordings, the ROS 2 recording, the stats JSON), listening ports
(Foxglove) and connections (RTSP publish, MQTT) are checked at once, before the model
loads or the source opens, so that a mistake costs one line, not a minute of set-up.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from depthstream.stream.calibration import stored_fit
from depthstream.stream.config import Config
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Pipeline, Sink, SourceInfo
from depthstream.stream.scene import Scenes

if TYPE_CHECKING:
    from depthstream.stream.sinks.foxglove_live import FoxgloveServer

log = logging.getLogger("depthstream")
ROBOT_MODULES = ("mcap", "mcap_ros2", "rosbags", "foxglove")


def check_writable(path: Path, flag: str, make_folders: bool = True) -> None:
    """A one-line error naming ``path`` when a file cannot be written there.  With
    ``make_folders`` missing folders are made when the file is written, so the nearest
    existing one is tried (with a nameless temporary file: nothing is left behind); else a
    missing folder is the error (a recording's path with a typo in it)."""
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, not a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: {folder} is not a folder")
    if not make_folders and folder != path.parent:
        raise UserError(f"{flag} {path}: the folder {path.parent} does not exist")
    try:
        if path.exists():
            with path.open("ab"):
                pass
        else:
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as exc:
        where = "it" if path.exists() else f"files in {folder}"
        raise UserError(f"{flag} {path}: cannot write {where} ({exc.strerror or exc})") from None


def check_port(host: str, port: int, flag: str) -> None:
    """A one-line error when ``host:port`` cannot be listened on (in use, no such address)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"{flag}: cannot listen on {host}:{port} ({reason})") from None


def parse_address(spec: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``[v6]:PORT``; port 0 = any free one), or a one-line error."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]") if sep else default_host
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"--foxglove {spec!r}: give PORT or HOST:PORT (port 0..65535)")
    return host or default_host, int(port)


@dataclass
class Outputs:
    """What a run writes and where it connects.  ``record``: the view as H.264 MP4;
    ``record_depth``: lossless depth (MKV); ``mcap``: ROS 2 messages; ``foxglove``:
    ``[HOST:]PORT`` of a live Foxglove server; ``publish``: RTSP push URL (``{camera}`` is
    a camera's name); ``mqtt``: broker URL; ``stats_json``: the run's figures at exit.
    Build with :meth:`checked`; the one Foxglove server serves every camera."""

    record: str | None = None
    record_depth: str | None = None
    mcap: str | None = None
    foxglove: str | None = None
    publish: str | None = None
    mqtt: str | None = None
    stats_json: str | None = None
    _foxglove_server: FoxgloveServer | None = field(default=None, init=False, repr=False)

    def checked(self, cfg: Config) -> Outputs:
        """These outputs with the config's publish and MQTT URLs filled in, every file,
        port and URL checked: a one-line error for the first that cannot work."""
        outputs = replace(
            self,
            publish=self.publish or cfg.publish.url or None,
            mqtt=self.mqtt or cfg.mqtt.url or None,
        )
        outputs.check()
        return outputs

    def check(self) -> None:
        if self.robot:
            for module in ROBOT_MODULES:
                if importlib.util.find_spec(module) is None:
                    raise UserError(
                        f"robot outputs need the robot extra ({module} is missing): "
                        "pip install 'depthstream[robot]'"
                    )
        files = self.files()
        for flag, path in files.items():
            check_writable(path, flag, make_folders=flag == "--stats-json")
        twice = {p for p in files.values() if list(files.values()).count(p) > 1}
        if twice:
            raise UserError(f"{sorted(twice)[0]} is given for two outputs")
        if self.foxglove:
            check_port(*parse_address(self.foxglove), "--foxglove")
        if self.publish:
            from depthstream.stream.sinks.rtsp_publish import check_publish_url

            check_publish_url(self.publish)
        if self.mqtt:
            from depthstream.stream.sinks.mqtt import BrokerAddress

            BrokerAddress.parse(self.mqtt)

    def files(self) -> dict[str, Path]:
        """The files this run writes, by the flag that named them."""
        named = {
            "--record": self.record,
            "--record-depth": self.record_depth,
            "--record-mcap": self.mcap,
            "--stats-json": self.stats_json,
        }
        return {flag: Path(value).expanduser().resolve() for flag, value in named.items() if value}

    @property
    def robot(self) -> bool:
        return bool(self.mcap or self.foxglove)

    @property
    def readings(self) -> bool:
        """Whether an output needs the obstacle meter's reading of every frame."""
        return self.robot or bool(self.mqtt)

    def sinks(self, pipeline: Pipeline) -> list[Sink]:
        """The sinks for the pipeline's camera, opened (the recording files, the listening
        server, the connections), with its settings: its own push URL, else ``{camera}`` in
        ``publish`` is its name; a camera not called "main" has its Foxglove topics under
        its name.  Files play at capture times when the source is live."""
        own = pipeline.settings
        cfg, camera, source = own.config, own.name, pipeline.source_info()
        sinks: list[Sink] = []
        url = own.publish or (self.publish or "").replace("{camera}", camera)
        try:
            for flag, path in self.files().items():
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise UserError(f"{flag} {path}: {exc.strerror or exc}") from None
            sinks += self._file_sinks(cfg, source)
            if self.robot:
                name = "" if camera == "main" else camera
                sinks += self._robot_sinks(cfg, source.fps, name)
            if url:
                from depthstream.stream.sinks.rtsp_publish import RtspPublisher, check_publish_url

                check_publish_url(url)
                sinks.append(RtspPublisher(url, source.fps, cfg.publish))
            if self.mqtt:
                from depthstream.stream.sinks.mqtt import MqttPublisher

                sinks.append(
                    MqttPublisher(self.mqtt, camera, lambda: pipeline.status().source, cfg.mqtt)
                )
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        return sinks

    def _file_sinks(self, cfg: Config, source: SourceInfo) -> list[Sink]:
        fps, paced = source.fps, source.live
        sinks: list[Sink] = []
        if self.record:
            from depthstream.stream.sinks.mp4 import Mp4Recorder

            o = cfg.output
            sinks.append(Mp4Recorder(self.record, fps, o.crf, o.preset, paced))
        if self.record_depth:
            from depthstream.stream.sinks.depth_mkv import DepthRecorder

            fit = stored_fit(cfg.calibration)
            sinks.append(DepthRecorder(self.record_depth, fps, paced, fit))
        return sinks

    def _robot_sinks(self, cfg: Config, fps: float, name: str) -> list[Sink]:
        from depthstream.stream.sinks.foxglove_live import FoxgloveServer
        from depthstream.stream.sinks.ros2_mcap import McapRecorder

        scenes = Scenes.of(cfg.camera, cfg.geometry, cfg.calibration)
        for gap in scenes.gaps():
            log.warning("%s%s", f"{name}: " if name else "", gap)
        sinks: list[Sink] = []
        if self.foxglove:
            if self._foxglove_server is None:
                server = FoxgloveServer(*parse_address(self.foxglove))
                self._foxglove_server = server
                log.info("Foxglove: open ws://%s:%d (Open connection)", server.host, server.port)
            sinks.append(self._foxglove_server.camera(scenes, cfg.robot, name))
        if self.mcap:
            try:
                sinks.append(McapRecorder(self.mcap, fps, scenes, cfg.robot, cfg.model.name))
            except BaseException:
                for sink in sinks:
                    sink.close()
                raise
        return sinks

    def written(self) -> list[str]:
        """The files this run was asked to write that exist now, for the closing summary."""
        files = self.files()
        paths = list(files.values())
        if "--record-depth" in files:  # and the recording's sidecar, its unit and scale
            paths.append(files["--record-depth"].with_suffix(".json"))
        return [str(path) for path in paths if path.is_file()]
