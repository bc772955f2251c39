"""GStreamer's RTSP server (``rtsp_server.py``) started and stopped as a camera."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import av

from depthstream.capture.sample import SAMPLE_PATH

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gst_available() -> bool:
    """Debian's python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0 are installed."""
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def loop_clip(dst: Path, seconds: float) -> Path:
    """The sample clip repeated (remuxed, not re-encoded) to at least ``seconds``."""
    with av.open(str(SAMPLE_PATH)) as src, av.open(str(dst), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        span = int(src.duration / 1e6 / video.time_base)
        loops = int(seconds // (src.duration / 1e6)) + 1
        for k in range(loops):
            src.seek(0)
            for packet in src.demux(video):
                if packet.dts is None:
                    continue
                packet.pts += k * span
                packet.dts += k * span
                packet.stream = stream
                out.mux(packet)
    return dst


class RtspServer:
    """The RTSP server process serving ``clip`` at rtsp://127.0.0.1:PORT/live."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip = clip
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/live"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.clip), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"RTSP server did not start: {self.proc.stderr.read().strip()}")

    def stop(self) -> None:
        """Kill it (SIGKILL), as a camera that loses power would go."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.proc = None
