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

    def check(self) -> None:
        """A ValueError naming the first value out of range (the settings' loader words it)."""
        for key, value in (("fx", self.fx), ("fy", self.fy), ("cx", self.cx), ("cy", self.cy)):
            if value < 0:
                raise ValueError(f"camera.{key} must be >= 0 (pixels; 0 = unknown)")
        if not 0 <= self.hfov_deg < 180:
            raise ValueError("camera.hfov_deg must be in 0..180 degrees (0 = unknown)")


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

    def check(self) -> None:
        """A ValueError naming the first value out of range (the settings' loader words it)."""
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"network.transport must be tcp or udp, got {self.transport!r}")
        waits = {
            "open_timeout": self.open_timeout,
            "read_timeout": self.read_timeout,
            "reconnect_initial": self.reconnect_initial,
            "reconnect_max": self.reconnect_max,
        }
        for key, value in waits.items():
            if value <= 0:
                raise ValueError(f"network.{key} must be > 0")
        if not 0 <= self.jitter_buffer <= 30:
            raise ValueError("network.jitter_buffer must be 0..30 seconds")
