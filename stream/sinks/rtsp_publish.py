"""Pushes the rendered view to a media server: H.264 over RTSP (ANNOUNCE/RECORD, TCP).

mediamtx, go2rtc and GStreamer's RTSP server in RECORD mode accept such a
push and serve it on to any number of viewers over WebRTC, HLS and RTSP.
Encoding and sending run on a thread of their own that takes only the newest
view: while the server is slow or away, frames are dropped (and counted), never
queued, and the pipeline never waits.  A lost server is retried with backoff;
a change of picture size (a layout switch) starts a new session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from depthstream.capture.network import redact
from depthstream.stream.config import PublishConfig
from depthstream.stream.errors import UserError
from depthstream.stream.frame_queue import FrameQueue
from depthstream.stream.pipeline import Result

log = logging.getLogger("depthstream")
TIME_BASE = Fraction(1, 90_000)  # RTP's video clock
CONNECTING, PUBLISHING, RECONNECTING, STOPPED = (
    "connecting",
    "publishing",
    "reconnecting",
    "stopped",
)


def check_publish_url(url: str) -> str:
    """``rtsp://`` or ``rtsps://`` with a host and a path, or a one-line error."""
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname or len(parts.path) < 2:
        raise UserError(f"--publish {redact(url)!r}: give rtsp://HOST[:PORT]/PATH")
    return url


class RtspSession:
    """One RTSP RECORD session: an H.264 encoder and the muxer writing to the server."""

    def __init__(self, url: str, size: tuple[int, int], fps: float, cfg: PublishConfig) -> None:
        height, width = size
        timeout = str(int(cfg.timeout * 1_000_000))  # microseconds, for every socket wait
        self.container = av.open(
            url, mode="w", format="rtsp", options={"rtsp_transport": "tcp", "timeout": timeout}
        )
        try:
            rate = max(round(fps), 1)
            stream = self.container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = cfg.bitrate
            stream.codec_context.time_base = TIME_BASE
            stream.codec_context.gop_size = max(round(cfg.keyframe_interval * rate), 1)
            stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
            stream.codec_context.open()
            self.container.start_encoding()
        except BaseException:
            self.container.close()
            raise
        self.stream = stream
        self.size = size
        self._started = time.monotonic()
        self._last_pts = -1

    def send(self, view: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(view, format="bgr24")
        pts = max(round((time.monotonic() - self._started) / TIME_BASE), self._last_pts + 1)
        frame.pts, frame.time_base, self._last_pts = pts, TIME_BASE, pts
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """End the session (TEARDOWN); a server that is already gone is not waited for."""
        with contextlib.suppress(av.error.FFmpegError, OSError):
            self.container.mux(self.stream.encode(None))
        with contextlib.suppress(av.error.FFmpegError, OSError):
            self.container.close()


class RtspPublisher:
    """Sink: every result's view to ``url``, from the ``publish`` thread."""

    name = "publish"

    def __init__(self, url: str, fps: float, cfg: PublishConfig) -> None:
        self.url = check_publish_url(url)
        self._fps = fps if fps > 0 else 25.0
        self._cfg = cfg
        self._slot: FrameQueue[Result] = FrameQueue(1, drop_oldest=True)
        self._lock = threading.Lock()
        self._state = CONNECTING
        self._sent = 0
        self._reconnects = 0
        self._failures = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish", daemon=True)
        self._thread.start()

    def write(self, result: Result) -> None:
        self._slot.put(result)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self._state,
                "connected": self._state == PUBLISHING,
                "sent": self._sent,
                "dropped": self._slot.dropped,
                "reconnects": self._reconnects,
                "failures": self._failures,
            }

    def _set(
        self, state: str, sent: int = 0, reconnected: bool = False, failed: bool = False
    ) -> None:
        with self._lock:
            self._state = state
            self._sent += sent
            self._reconnects += int(reconnected)
            self._failures += int(failed)

    def close(self) -> None:
        self._stopped.set()
        self._slot.close()
        self._thread.join()

    def _run(self) -> None:
        delay, session, lost = self._cfg.reconnect_initial, None, False
        try:
            while not self._stopped.is_set():
                result = self._slot.get(timeout=0.5)
                if result is None:
                    continue
                view = result.view
                try:
                    if session is not None and session.size != view.shape[:2]:
                        session.close()
                        session = None
                    if session is None:
                        session = RtspSession(self.url, view.shape[:2], self._fps, self._cfg)
                        log.info("publishing to %s", redact(self.url))
                        self._set(PUBLISHING, reconnected=lost)
                        delay, lost = self._cfg.reconnect_initial, False
                    session.send(view)
                    self._set(PUBLISHING, sent=1)
                except (av.error.FFmpegError, OSError) as exc:
                    if session is not None:
                        session.close()
                        session = None
                    if not lost:
                        log.warning("publishing to %s failed (%s); retrying", redact(self.url), exc)
                    self._set(RECONNECTING if self._sent or lost else CONNECTING, failed=True)
                    lost = lost or self._sent > 0
                    self._stopped.wait(delay)
                    delay = min(delay * 2, self._cfg.reconnect_max)
        finally:
            if session is not None:
                session.close()
            self._set(STOPPED)
