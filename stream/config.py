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

OFFICIAL_WEIGHTS_URL = (
    "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt"
)
# SHA-256 of the official file (85,761,505 bytes); its first 8 hex digits are the
# "70d6b9c8" that torch hub's older name for the same file carries.
OFFICIAL_WEIGHTS_SHA256 = "70d6b9c891758c67f974a6097fb0c608c7ee67fb81ac3e5588847d5596d56fca"
COLORMAPS = ("inferno", "turbo", "magma", "viridis", "plasma", "jet", "gray")
DEPTH_ONLY = "depth"
SIDE_BY_SIDE = "side-by-side"
LAYOUTS = (DEPTH_ONLY, SIDE_BY_SIDE)
# Which backend runs which precision (what each is, in docs/runtimes.md).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "bf16-decoder"),
    "onnxruntime": ("fp32", "int8", "int8-decoder"),
    "openvino": ("fp32", "bf16", "bf16-decoder", "int8", "int8-decoder"),
}


@dataclass
class ModelConfig:
    """Which weights to run, on which runtime and precision, with how many threads."""

    weights: str = ""
    weights_url: str = OFFICIAL_WEIGHTS_URL
    weights_sha256: str = OFFICIAL_WEIGHTS_SHA256
    cache_dir: str = ""
    threads: int = 0
    backend: str = "torch"
    precision: str = "fp32"
    input_size: int = 256

    def cache_root(self) -> Path:
        """Where downloaded weights and built model files live (XDG cache by default)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "depthstream"


@dataclass
class NormalizeConfig:
    """EMA-smoothed robust range, so colours hold still between frames."""

    low_percentile: float = 2.0
    high_percentile: float = 98.0
    ema: float = 0.1


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


@dataclass
class RenderConfig:
    """How a depth map becomes a picture."""

    colormap: str = "inferno"
    layout: str = DEPTH_ONLY


@dataclass
class OutputConfig:
    """Recording encoder settings and how often a live run logs its figures."""

    crf: int = 23
    preset: str = "superfast"
    log_interval: float = 5.0


@dataclass
class PipelineConfig:
    """Frames waiting between capture and inference (live sources keep the newest)."""

    queue_size: int = 1


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


@dataclass
class ObstacleConfig:
    """Vertical sectors of the frame (or of a band of it) and when a sector warns."""

    sectors: int = 5
    band_top: float = 0.0
    band_bottom: float = 1.0
    percentile: float = 95.0
    warn_metres: float = 1.0
    warn_relative: float = 0.8


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


@dataclass
class RobotConfig:
    """What the ROS 2 recording and the Foxglove stream stamp on their messages: the
    camera's optical ``frame_id`` (images, points), the body-aligned ``scan_frame_id``
    the laser scan lies in (x forward, y left), and the camera frame's JPEG quality."""

    frame_id: str = "camera_optical_frame"
    scan_frame_id: str = "camera_link"
    jpeg_quality: int = 80


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


@dataclass
class MqttConfig:
    """``--mqtt``: obstacle readings published at most every ``interval`` s, status retained,
    with a last will; ``keepalive`` s between pings (a dead link is noticed within 1.5x)."""

    url: str = ""
    interval: float = 0.2
    keepalive: int = 30


@dataclass
class CameraEntry:
    """One camera of a multi-camera ``serve``: a name for its URLs and topics, any source
    ``run`` takes, and optionally its own RTSP publish URL, network input size (0: the
    ``[model]`` one) and ``[calibration]``/``[obstacles]`` (None: the global sections;
    a camera's table overrides only the keys it gives)."""

    name: str
    source: str
    publish: str = ""
    input_size: int = 0
    calibration: CalibrationConfig | None = None
    obstacles: ObstacleConfig | None = None

    def settings(self, cfg: Config) -> Config:
        """``cfg`` as this camera sees it."""
        model = cfg.model
        if self.input_size:
            model = dataclasses.replace(model, input_size=self.input_size)
        return dataclasses.replace(
            cfg,
            model=model,
            calibration=self.calibration or cfg.calibration,
            obstacles=self.obstacles or cfg.obstacles,
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


def _validate(cfg: Config) -> None:
    n = cfg.normalize
    if not 0 <= n.low_percentile < n.high_percentile <= 100:
        raise UserError(
            "config: normalize.low_percentile and normalize.high_percentile must satisfy "
            f"0 <= low < high <= 100 (got {n.low_percentile}, {n.high_percentile})"
        )
    if not 0 < n.ema <= 1:
        raise UserError(f"config: normalize.ema must be in (0, 1], got {n.ema}")
    t = cfg.temporal
    if not 0 < t.static_threshold < 1 or not 0 <= t.cut_static <= t.min_static < 1:
        raise UserError(
            "config: temporal needs 0 < static_threshold < 1 and 0 <= cut_static <= min_static < 1"
        )
    if not 0 < t.pixel_ema <= 1:
        raise UserError(f"config: temporal.pixel_ema must be in (0, 1], got {t.pixel_ema}")
    if not t.depth_tolerance > 0:
        raise UserError(f"config: temporal.depth_tolerance must be > 0, got {t.depth_tolerance}")
    if cfg.render.colormap not in COLORMAPS:
        raise UserError(
            f"config: render.colormap {cfg.render.colormap!r} is not one of {', '.join(COLORMAPS)}"
        )
    if cfg.render.layout not in LAYOUTS:
        raise UserError(
            f"config: render.layout {cfg.render.layout!r} is not one of {', '.join(LAYOUTS)}"
        )
    if cfg.model.threads < 0:
        raise UserError(
            f"config: model.threads must be >= 0 (0 = all cores), got {cfg.model.threads}"
        )
    m = cfg.model
    if m.backend not in PRECISIONS:
        raise UserError(
            f"config: model.backend {m.backend!r} is not one of {', '.join(PRECISIONS)}"
        )
    if m.precision not in PRECISIONS[m.backend]:
        raise UserError(
            f"config: model.precision {m.precision!r} is not available on {m.backend} "
            f"(choose {', '.join(PRECISIONS[m.backend])})"
        )
    if m.input_size % 32 or not 64 <= m.input_size <= 1024:
        raise UserError(
            f"config: model.input_size must be a multiple of 32 in 64..1024, got {m.input_size}"
        )
    if not 0 <= cfg.output.crf <= 51:
        raise UserError(f"config: output.crf must be in 0..51, got {cfg.output.crf}")
    if cfg.pipeline.queue_size < 1:
        raise UserError(f"config: pipeline.queue_size must be >= 1, got {cfg.pipeline.queue_size}")
    if cfg.network.transport not in ("tcp", "udp"):
        raise UserError(
            f"config: network.transport must be tcp or udp, got {cfg.network.transport!r}"
        )
    for key in ("open_timeout", "read_timeout", "reconnect_initial", "reconnect_max"):
        if getattr(cfg.network, key) <= 0:
            raise UserError(f"config: network.{key} must be > 0")
    for key in ("fx", "fy", "cx", "cy"):
        if getattr(cfg.camera, key) < 0:
            raise UserError(f"config: camera.{key} must be >= 0 (pixels; 0 = unknown)")
    if not 0 <= cfg.camera.hfov_deg < 180:
        raise UserError("config: camera.hfov_deg must be in 0..180 degrees (0 = unknown)")
    g = cfg.geometry
    if (
        g.stride < 1
        or not 0 < g.range_min < g.max_range
        or not 0 <= g.scan_top < g.scan_bottom <= 1
    ):
        raise UserError(
            "config: geometry needs stride >= 1, 0 < range_min < max_range and "
            "0 <= scan_top < scan_bottom <= 1"
        )
    r = cfg.robot
    if not r.frame_id or not r.scan_frame_id or r.frame_id == r.scan_frame_id:
        raise UserError("config: robot needs two different names, frame_id and scan_frame_id")
    if not 1 <= r.jpeg_quality <= 100:
        raise UserError(f"config: robot.jpeg_quality must be in 1..100, got {r.jpeg_quality}")
    pub = cfg.publish
    if pub.bitrate < 10_000 or pub.keyframe_interval <= 0 or pub.timeout <= 0:
        raise UserError(
            "config: publish needs bitrate >= 10000, keyframe_interval > 0, timeout > 0"
        )
    if not 0 < pub.reconnect_initial <= pub.reconnect_max:
        raise UserError("config: publish needs 0 < reconnect_initial <= reconnect_max")
    if cfg.mqtt.interval < 0 or cfg.mqtt.keepalive < 5:
        raise UserError("config: mqtt needs interval >= 0 and keepalive >= 5 seconds")
    if not 0 <= cfg.network.jitter_buffer <= 30:
        raise UserError("config: network.jitter_buffer must be 0..30 seconds")
    for i, point in enumerate(cfg.calibration.points):
        if len(point) != 3 or point[2] <= 0:
            raise UserError(f"config: calibration.points[{i}] must be [x, y, metres > 0]")
    o = cfg.obstacles
    if o.sectors < 1 or not 0 <= o.band_top < o.band_bottom <= 1 or not 0 < o.percentile <= 100:
        raise UserError(
            "config: obstacles needs sectors >= 1, 0 <= band_top < band_bottom <= 1 "
            "and 0 < percentile <= 100"
        )
    if not 0 <= cfg.web.port < 65536:
        raise UserError(f"config: web.port must be 1..65535, got {cfg.web.port}")
    if cfg.web.max_upload_mb <= 0 or cfg.web.max_pixels <= 0:
        raise UserError("config: web.max_upload_mb and web.max_pixels must be > 0")
    w = cfg.web
    limits = (w.max_viewers, w.max_connecting, w.offers_per_minute, w.offer_burst)
    limits += (w.max_websockets, w.max_uploads, w.connections_per_address, w.min_body_rate)
    timeouts = (w.connect_timeout, w.head_timeout, w.idle_timeout)
    if min(limits) < 1 or min(timeouts) <= 0:
        raise UserError(
            "config: web.max_viewers, max_connecting, offers_per_minute, offer_burst, "
            "max_websockets, max_uploads, connections_per_address and min_body_rate must be "
            ">= 1, and web.connect_timeout, head_timeout and idle_timeout > 0"
        )
    if bool(w.tls_cert) != bool(w.tls_key):
        raise UserError("config: web.tls_cert and web.tls_key go together (both or neither)")
    if cfg.web.bitrate < 10_000 or cfg.web.keyframe_interval <= 0:
        raise UserError(
            "config: web.bitrate must be >= 10000 (bits/s) and web.keyframe_interval > 0 (s), "
            f"got {cfg.web.bitrate} and {cfg.web.keyframe_interval}"
        )


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
        known = {"name": str, "source": str, "publish": str, "input_size": int}
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
        _validate(entry.settings(cfg))
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
    cfg = Config(**sections)
    _validate(cfg)
    if "cameras" in data:
        cfg = dataclasses.replace(cfg, cameras=_cameras(data["cameras"], cfg))
    return cfg


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
    out = dataclasses.replace(cfg, **changed)
    _validate(out)
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
