"""Typed configuration: dataclass defaults, overridden by ``config.toml``, then by flags.

A leaf: the settings, the names they may take and their validation, with
nothing of the rest of stream imported, so every layer can read its own
section.  Every default lives here once; the repository's ``config.toml`` spells the
same values out for users to edit (a test keeps the two in step).  Loading is
strict: an unknown section or key, or a value of the wrong type, is an error
that names the key, because a silently ignored typo is worse than a refusal.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import tomlkit

from depthstream.capture.options import CameraOptions, NetworkOptions
from depthstream.stream.errors import UserError
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS, ModelSpec

COLORMAPS = ("inferno", "turbo", "magma", "viridis", "plasma", "jet", "gray")
DEPTH_ONLY = "depth"
SIDE_BY_SIDE = "side-by-side"
LAYOUTS = (DEPTH_ONLY, SIDE_BY_SIDE)


@dataclass(frozen=True)
class Backend:
    """A runtime by name: the precisions it offers, the package it imports and the extra
    that installs it (what each precision is: docs/runtimes.md)."""

    precisions: tuple[str, ...]
    package: str
    extra: str = ""


# The one table of runtimes: settings, flags, the runtime registry and the bench read it.
BACKENDS: dict[str, Backend] = {
    "torch": Backend(("fp32", "bf16", "bf16-decoder"), "torch"),
    "onnxruntime": Backend(("fp32", "int8", "int8-decoder"), "onnxruntime", "runtimes"),
    "openvino": Backend(
        ("fp32", "bf16", "bf16-decoder", "int8", "int8-decoder"), "openvino", "runtimes"
    ),
}


@dataclass
class ModelConfig:
    """Which model and weights to run, on which runtime and precision, with how many threads
    and at which input size (0: the model's own default for stills or for video).
    ``weights_url``/``weights_sha256`` empty: the model's official file."""

    name: str = DEFAULT_MODEL
    weights: str = ""
    weights_url: str = ""
    weights_sha256: str = ""
    cache_dir: str = ""
    threads: int = 0
    backend: str = "torch"
    precision: str = "fp32"
    input_size: int = 0

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.name]

    def size(self, still: bool = False) -> int:
        """The network input size: the configured one, else the model's default."""
        return self.input_size or (self.spec.still_size if still else self.spec.live_size)

    def cache_root(self) -> Path:
        """Where downloaded weights and built model files live (XDG cache by default)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "depthstream"

    def check(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"model.name {self.name!r} is not one of {', '.join(MODELS)}")
        if self.threads < 0:
            raise ValueError(f"model.threads must be >= 0 (0 = all cores), got {self.threads}")
        if self.backend not in BACKENDS:
            raise ValueError(f"model.backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        offered = BACKENDS[self.backend].precisions
        if self.precision not in offered:
            raise ValueError(
                f"model.precision {self.precision!r} is not available on {self.backend} "
                f"(choose {', '.join(offered)})"
            )
        multiple, top = (32, 1024) if self.spec.preprocessing == "midas" else (14, 1036)
        if self.input_size and (self.input_size % multiple or not 64 <= self.input_size <= top):
            raise ValueError(
                f"model.input_size for {self.name} must be 0 (the model's default) or a "
                f"multiple of {multiple} in 64..{top}, got {self.input_size}"
            )


@dataclass
class NormalizeConfig:
    """EMA-smoothed robust range, so colours hold still between frames."""

    low_percentile: float = 2.0
    high_percentile: float = 98.0
    ema: float = 0.1

    def check(self) -> None:
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise ValueError(
                "normalize.low_percentile and normalize.high_percentile must satisfy "
                f"0 <= low < high <= 100 (got {self.low_percentile}, {self.high_percentile})"
            )
        if not 0 < self.ema <= 1:
            raise ValueError(f"normalize.ema must be in (0, 1], got {self.ema}")


@dataclass
class TemporalConfig:
    """Stabilization: each frame's depth less its flicker (:mod:`stream.stabilizer`).

    ``static_threshold``: how much a pixel's brightness may differ from the
    motion-compensated previous frame's (both normalized, as a fraction of 255) and
    still match.  ``min_static``: the share of matching pixels a new scale/shift fit
    needs.  ``cut_static``: below this share the frame is a scene cut and the
    reference restarts.  ``pixel_ema``: the new frame's weight in the per-pixel
    smoothing, which runs only while the camera is still.  ``depth_tolerance``: a
    pixel whose depth moved by more than this share of the depth's 2-98% range is
    taken as it is, never smoothed.
    """

    stabilize: bool = True
    static_threshold: float = 0.04
    min_static: float = 0.3
    cut_static: float = 0.05
    pixel_ema: float = 0.4
    depth_tolerance: float = 0.75

    def check(self) -> None:
        if not 0 < self.static_threshold < 1 or not 0 <= self.cut_static <= self.min_static < 1:
            raise ValueError(
                "temporal needs 0 < static_threshold < 1 and 0 <= cut_static <= min_static < 1"
            )
        if not 0 < self.pixel_ema <= 1:
            raise ValueError(f"temporal.pixel_ema must be in (0, 1], got {self.pixel_ema}")
        if not self.depth_tolerance > 0:
            raise ValueError(f"temporal.depth_tolerance must be > 0, got {self.depth_tolerance}")


@dataclass
class RenderConfig:
    """How a depth map becomes a picture."""

    colormap: str = "inferno"
    layout: str = DEPTH_ONLY

    def check(self) -> None:
        if self.colormap not in COLORMAPS:
            raise ValueError(
                f"render.colormap {self.colormap!r} is not one of {', '.join(COLORMAPS)}"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"render.layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")


@dataclass
class OutputConfig:
    """Recording encoder settings and how often a live run logs its figures."""

    crf: int = 23
    preset: str = "superfast"
    log_interval: float = 5.0

    def check(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"output.crf must be in 0..51, got {self.crf}")


@dataclass
class PipelineConfig:
    """Frames waiting between capture and inference (live sources keep the newest)."""

    queue_size: int = 1

    def check(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"pipeline.queue_size must be >= 1, got {self.queue_size}")


@dataclass
class WebConfig:
    """The ``serve`` command: where it listens, ICE servers, the video stream, who may connect
    (token, hosts, origins), the limits that hold under a flood, and TLS."""

    host: str = "127.0.0.1"
    port: int = 8080
    ice_servers: list[str] = field(default_factory=list)
    ice_loopback: bool = False
    bitrate: int = 1_500_000
    keyframe_interval: float = 2.0
    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000
    token: str = ""
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    max_viewers: int = 16
    max_connecting: int = 32
    offers_per_minute: int = 30
    offer_burst: int = 10
    connect_timeout: float = 10.0
    max_websockets: int = 32
    max_uploads: int = 1
    connections_per_address: int = 32
    head_timeout: float = 10.0
    idle_timeout: float = 30.0
    min_body_rate: int = 16384
    tls_cert: str = ""
    tls_key: str = ""

    def check(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"web.port must be 1..65535, got {self.port}")
        if self.max_upload_mb <= 0 or self.max_pixels <= 0:
            raise ValueError("web.max_upload_mb and web.max_pixels must be > 0")
        limits = (self.max_viewers, self.max_connecting, self.offers_per_minute, self.offer_burst)
        limits += (self.max_websockets, self.max_uploads, self.connections_per_address)
        timeouts = (self.connect_timeout, self.head_timeout, self.idle_timeout)
        if min((*limits, self.min_body_rate)) < 1 or min(timeouts) <= 0:
            raise ValueError(
                "web.max_viewers, max_connecting, offers_per_minute, offer_burst, "
                "max_websockets, max_uploads, connections_per_address and min_body_rate must "
                "be >= 1, and web.connect_timeout, head_timeout and idle_timeout > 0"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("web.tls_cert and web.tls_key go together (both or neither)")
        if self.bitrate < 10_000 or self.keyframe_interval <= 0:
            raise ValueError(
                "web.bitrate must be >= 10000 (bits/s) and web.keyframe_interval > 0 (s), "
                f"got {self.bitrate} and {self.keyframe_interval}"
            )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass
class CalibrationConfig:
    """Known distances and the fitted metric conversion (written by ``calibrate``).

    ``anchor``: the file holding the calibration frame's image and stabilized depth, so
    later runs align their depth to the frame the conversion was fitted on; a relative
    path is relative to the config file.
    """

    points: list[list[float]] = field(default_factory=list)
    radius: int = 2
    scale: float = 0.0
    shift: float = 0.0
    rms_error_m: float = 0.0
    anchor: str = ""
    refit: bool = False
    refit_ema: float = 0.2

    def check(self) -> None:
        for i, point in enumerate(self.points):
            if len(point) != 3 or point[2] <= 0:
                raise ValueError(f"calibration.points[{i}] must be [x, y, metres > 0]")


@dataclass
class ObstacleConfig:
    """Vertical sectors of the frame (or of a band of it) and when a sector warns."""

    sectors: int = 5
    band_top: float = 0.0
    band_bottom: float = 1.0
    percentile: float = 95.0
    warn_metres: float = 1.0
    warn_relative: float = 0.8

    def check(self) -> None:
        band = 0 <= self.band_top < self.band_bottom <= 1
        if self.sectors < 1 or not band or not 0 < self.percentile <= 100:
            raise ValueError(
                "obstacles needs sectors >= 1, 0 <= band_top < band_bottom <= 1 "
                "and 0 < percentile <= 100"
            )


@dataclass
class GeometryConfig:
    """Point clouds (every ``stride``-th pixel up to ``max_range`` metres) and the laser
    scan (nearest range per column over rows ``scan_top``..``scan_bottom``, fractions of
    the height), made from calibrated depth with ``[camera]``'s intrinsics."""

    stride: int = 4
    max_range: float = 10.0
    scan_top: float = 0.45
    scan_bottom: float = 0.55
    range_min: float = 0.1

    def check(self) -> None:
        rows = 0 <= self.scan_top < self.scan_bottom <= 1
        if self.stride < 1 or not 0 < self.range_min < self.max_range or not rows:
            raise ValueError(
                "geometry needs stride >= 1, 0 < range_min < max_range and "
                "0 <= scan_top < scan_bottom <= 1"
            )


@dataclass
class RobotConfig:
    """What the ROS 2 recording and the Foxglove stream stamp on their messages: the
    camera's optical ``frame_id`` (images, points), the body-aligned ``scan_frame_id``
    the laser scan lies in (x forward, y left), and the camera frame's JPEG quality."""

    frame_id: str = "camera_optical_frame"
    scan_frame_id: str = "camera_link"
    jpeg_quality: int = 80

    def check(self) -> None:
        if not self.frame_id or not self.scan_frame_id or self.frame_id == self.scan_frame_id:
            raise ValueError("robot needs two different names, frame_id and scan_frame_id")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"robot.jpeg_quality must be in 1..100, got {self.jpeg_quality}")


@dataclass
class PublishConfig:
    """``--publish``: the rendered view pushed as H.264 over RTSP to a media server, at this
    bitrate with a key frame every ``keyframe_interval`` s; a lost server is retried after
    ``reconnect_initial`` s, doubling up to ``reconnect_max``; ``timeout`` bounds every
    network wait."""

    url: str = ""
    bitrate: int = 2_000_000
    keyframe_interval: float = 2.0
    timeout: float = 5.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 10.0

    def check(self) -> None:
        if self.bitrate < 10_000 or self.keyframe_interval <= 0 or self.timeout <= 0:
            raise ValueError("publish needs bitrate >= 10000, keyframe_interval > 0, timeout > 0")
        if not 0 < self.reconnect_initial <= self.reconnect_max:
            raise ValueError("publish needs 0 < reconnect_initial <= reconnect_max")


@dataclass
class MqttConfig:
    """``--mqtt``: obstacle readings published at most every ``interval`` s, status retained,
    with a last will; ``keepalive`` s between pings (a dead link is noticed within 1.5x)."""

    url: str = ""
    interval: float = 0.2
    keepalive: int = 30

    def check(self) -> None:
        if self.interval < 0 or self.keepalive < 5:
            raise ValueError("mqtt needs interval >= 0 and keepalive >= 5 seconds")


@dataclass
class CameraEntry:
    """One camera of a multi-camera ``serve``: a name for its URLs and topics, any source
    ``run`` takes, and optionally its own RTSP publish URL, model (another than ``[model]``
    name runs at its own default size, fp32), network input size (0: the ``[model]`` one)
    and ``[calibration]``/``[obstacles]`` (None: the global sections; a camera's table
    overrides only the keys it gives)."""

    name: str
    source: str
    publish: str = ""
    model: str = ""
    input_size: int = 0
    calibration: CalibrationConfig | None = None
    obstacles: ObstacleConfig | None = None

    def settings(self, cfg: Config, named: bool = True) -> CameraSettings:
        """This camera's settings: ``cfg`` as it sees it, with its own sections on top."""
        model = cfg.model
        if self.model and self.model != model.name:
            model = dataclasses.replace(model, name=self.model, input_size=0, precision="fp32")
        if self.input_size:
            model = dataclasses.replace(model, input_size=self.input_size)
        own = metric_default(
            dataclasses.replace(
                cfg,
                model=model,
                calibration=self.calibration or cfg.calibration,
                obstacles=self.obstacles or cfg.obstacles,
            )
        )
        return CameraSettings(
            name=self.name, source=self.source, publish=self.publish, config=own, named=named
        )


@dataclass
class Config:
    """Every section of ``config.toml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    camera: CameraOptions = field(default_factory=CameraOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    web: WebConfig = field(default_factory=WebConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    obstacles: ObstacleConfig = field(default_factory=ObstacleConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    cameras: list[CameraEntry] = field(default_factory=list)

    def check(self) -> None:
        """Each section checks its own values; the first bad one is a one-line error."""
        sections = [getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cameras"]
        try:
            for section in sections:
                section.check()
        except ValueError as exc:
            raise UserError(f"config: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class CameraSettings:
    """One camera's settings, built once by the assembly and carried by the camera's
    pipeline and its web feed: ``config`` is the whole configuration as this camera sees it
    (its model and input size, calibration, obstacles, temporal, ...), ``publish`` its own
    RTSP push URL ("" = the global one), ``named`` whether it is one of several (then its
    logs, topics and URLs carry ``name``)."""

    name: str = "main"
    source: str = ""
    config: Config = field(default_factory=lambda: Config())
    publish: str = ""
    named: bool = False


def _check_type(where: str, value: Any, expected: Any) -> Any:
    if get_origin(expected) is list:
        if not isinstance(value, list):
            raise UserError(f"config: {where} must be a list")
        (item,) = get_args(expected)
        return [_check_type(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and expected is not bool:
        raise UserError(f"config: {where} must be {expected.__name__}, got a boolean")
    if not isinstance(value, expected):
        raise UserError(
            f"config: {where} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


CAMERA_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


def check_camera_names(names: list[str]) -> None:
    """Names become URL path parts and MQTT topic levels: letters, digits, ``-``, ``_``."""
    for name in names:
        if not CAMERA_NAME.fullmatch(name):
            raise UserError(f"camera name {name!r}: use 1-32 letters, digits, '-' or '_'")
    if len(set(names)) != len(names):
        raise UserError("camera names must differ")


def _overridden(where: str, base: Any, table: Any) -> Any:
    """``base`` (a section) with the keys of ``table`` replaced, each checked."""
    if not isinstance(table, dict):
        raise UserError(f"config: {where} must be a table")
    hints = get_type_hints(type(base))
    for key in table:
        if key not in hints:
            raise UserError(f"config: unknown key {where}.{key} (known: {', '.join(hints)})")
    values = {k: _check_type(f"{where}.{k}", v, hints[k]) for k, v in table.items()}
    return dataclasses.replace(base, **values)


def _cameras(tables: Any, cfg: Config) -> list[CameraEntry]:
    """``[[cameras]]`` tables (``cameras = []``: one camera, from the command line), their
    sub-tables over ``cfg``'s sections."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UserError("config: cameras must be [[cameras]] tables")
    entries = []
    for i, table in enumerate(tables):
        where = f"cameras[{i}]"
        known = {"name": str, "source": str, "publish": str, "model": str, "input_size": int}
        unknown = set(table) - set(known) - {"calibration", "obstacles"}
        if unknown or not {"name", "source"} <= set(table):
            raise UserError(
                f"config: {where} needs name and source (known keys: "
                f"{', '.join(known)}, [cameras.calibration], [cameras.obstacles])"
            )
        values: dict[str, Any] = {
            k: _check_type(f"{where}.{k}", v, known[k]) for k, v in table.items() if k in known
        }
        for section in ("calibration", "obstacles"):
            if section in table:
                base = getattr(cfg, section)
                values[section] = _overridden(f"{where}.{section}", base, table[section])
        entry = CameraEntry(**values)
        entry.settings(cfg).config.check()
        entries.append(entry)
    check_camera_names([e.name for e in entries])
    return entries


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from parsed TOML, naming any bad key."""
    sections: dict[str, Any] = {}
    section_types = get_type_hints(Config)
    for name, table in data.items():
        if name == "cameras":
            continue
        if name not in section_types:
            raise UserError(f"config: unknown section [{name}] (known: {', '.join(section_types)})")
        if not isinstance(table, dict):
            raise UserError(f"config: [{name}] must be a table")
        cls = section_types[name]
        hints = get_type_hints(cls)
        values = {}
        for key, value in table.items():
            if key not in hints:
                raise UserError(f"config: unknown key {name}.{key} (known: {', '.join(hints)})")
            values[key] = _check_type(f"{name}.{key}", value, hints[key])
        sections[name] = cls(**values)
    cfg = metric_default(Config(**sections))
    cfg.check()
    if "cameras" in data:
        cfg = dataclasses.replace(cfg, cameras=_cameras(data["cameras"], cfg))
    return cfg


def metric_default(cfg: Config) -> Config:
    """A metric model gives 1 / metres as its inverse depth: until calibrated, its
    conversion is the identity (scale 1, shift 0), so every output speaks metres."""
    spec = MODELS.get(cfg.model.name)  # an unknown name is the check's to word
    if spec is None or not spec.metric or cfg.calibration.scale > 0:
        return cfg
    identity = dataclasses.replace(cfg.calibration, scale=1.0, shift=0.0)
    return dataclasses.replace(cfg, calibration=identity)


def default_config_path() -> Path | None:
    """``DEPTHSTREAM_CONFIG``, else ``./config.toml`` when present, else built-in defaults."""
    env = os.environ.get("DEPTHSTREAM_CONFIG")
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def load_config(path: str | Path | None = None) -> Config:
    """Load ``path`` (or the default location); missing explicit files are an error."""
    path = Path(path) if path is not None else default_config_path()
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config: {path} is not valid TOML: {exc}") from None
    cfg = config_from_dict(data)
    sections = [cfg.calibration] + [c.calibration for c in cfg.cameras if c.calibration]
    for section in sections:
        if section.anchor and not Path(section.anchor).is_absolute():
            section.anchor = str(path.parent / section.anchor)
    return cfg


def with_overrides(cfg: Config, **sections: dict[str, Any]) -> Config:
    """Return ``cfg`` with the given non-``None`` values replaced (command-line flags)."""
    changed = {}
    for name, values in sections.items():
        values = {k: v for k, v in values.items() if v is not None}
        changed[name] = dataclasses.replace(getattr(cfg, name), **values)
    out = metric_default(dataclasses.replace(cfg, **changed))
    out.check()
    return out


def write_section(path: Path, name: str, values: Any, camera: str | None = None) -> None:
    """Replace (or add) ``[name]`` in a TOML file, or with ``camera`` that ``[[cameras]]``
    entry's ``[cameras.name]``, keeping everything else (comments too) as it was.

    Written to a temporary file and renamed, so a crash never leaves half a config.
    A camera with no ``[[cameras]]`` entry in the file is a UserError.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    doc = tomlkit.parse(text)
    table = tomlkit.table()
    table.update(dataclasses.asdict(values))
    table.add(tomlkit.nl())
    if camera is None:
        doc[name] = table
    else:
        entries = doc.get("cameras", [])
        entry = next((e for e in entries if e.get("name") == camera), None)
        if entry is None:
            raise UserError(f"camera {camera!r} has no [[cameras]] entry in {path}")
        entry[name] = table
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
