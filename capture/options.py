"""What a webcam and a network stream are asked for: the ``[camera]`` and ``[network]`` settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CameraOptions:
    """A V4L2 request: size and rate (0 = the driver's default), MJPG, and how many failed
    reads in a row mean the camera is gone; and, for any source, the lens: focal lengths
    and principal point in pixels of the frame, or the horizontal field of view (0 =
    unknown), which 3-D outputs need."""

    width: int = 0
    height: int = 0
    fps: float = 0.0
    mjpg: bool = False
    max_failed_reads: int = 30
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    hfov_deg: float = 0.0


@dataclass
class NetworkOptions:
    """RTSP/HTTP: transport, timeouts in seconds, the reconnect backoff (0 attempts =
    forever) and the most a frame may be held to even out bursts (seconds, 0 = never)."""

    transport: str = "tcp"
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 10.0
    reconnect_attempts: int = 0
    jitter_buffer: float = 1.5
