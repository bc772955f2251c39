"""RTSP and HTTP (MJPEG, HLS) cameras through PyAV, tuned for low delay.

TCP transport by default, no input buffering, bounded open/read timeouts.  A
URL that never answers is a :class:`SourceError` at start (so a wrong URL is seen
at once) unless the source is told to ``wait``, as one of several cameras is; a
stream that drops or stalls is reopened with exponential backoff while the status
says "reconnecting", because a lost network camera must not end the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import av

from depthstream.capture.decode import decode_rgb
from depthstream.capture.errors import SourceError
from depthstream.capture.options import NetworkOptions
from depthstream.capture.source import ENDED, RECONNECTING, RUNNING, Frame, SourceStatus

log = logging.getLogger("depthstream")

SCHEMES = ("rtsp", "rtsps", "http", "https")


def redact(url: str) -> str:
    """The URL without a password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest.split("/", 1)[0]:
        creds, host = rest.split("@", 1)
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url


class NetworkSource:
    """Frames from a network camera; reconnects on loss."""

    live = True
    frame_count = None

    def __init__(
        self, url: str, options: NetworkOptions | None = None, *, wait: bool = False
    ) -> None:
        """``wait``: a camera not reachable yet is retried in the background instead of
        being an error; its size and rate are unknown until it answers."""
        self.url = url
        self.options = options or NetworkOptions()
        self.status = SourceStatus()
        self._stopped = threading.Event()
        self._container: av.container.InputContainer | None = None
        try:
            self._container = self._open()
        except (av.error.FFmpegError, SourceError) as exc:
            reason = exc.strerror if isinstance(exc, av.error.FFmpegError) else None
            message = f"{redact(url)}: cannot open stream ({reason or exc})"
            if not wait:
                raise SourceError(message) from None
            log.warning("%s; retrying in the background", message)
            self.status.set_state(RECONNECTING)

    def _open(self) -> av.container.InputContainer:
        av_options = {"fflags": "nobuffer", "flags": "low_delay"}
        if self.url.startswith(("rtsp://", "rtsps://")):
            av_options["rtsp_transport"] = self.options.transport
        container = av.open(
            self.url,
            options=av_options,
            timeout=(self.options.open_timeout, self.options.read_timeout),
        )
        if not container.streams.video:
            container.close()
            raise SourceError(f"{redact(self.url)}: has no video stream")
        return container

    @property
    def fps(self) -> float:
        container = self._container
        rate = container.streams.video[0].average_rate if container else None
        return float(rate) if rate else 25.0

    @property
    def size(self) -> tuple[int, int] | None:
        if self._container is None:
            return None
        ctx = self._container.streams.video[0].codec_context
        return ctx.height, ctx.width

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        if self._container is None:
            if not self._reopen():
                self.status.set_state(ENDED)
                return
            log.info("%s answered", redact(self.url))
        while not self._stopped.is_set():
            try:
                for rgb, pts in decode_rgb(self._container, self.status):
                    yield Frame(rgb=rgb, seq=seq, pts=pts, captured_at=time.monotonic())
                    seq += 1
                    self.status.set_state(RUNNING)
                    if self._stopped.is_set():
                        break
                reason = "stream ended"
            except (av.error.FFmpegError, OSError) as exc:
                reason = str(exc)
            if self._stopped.is_set() or not self._reconnect(reason):
                break
        self.status.set_state(ENDED)

    def _reconnect(self, reason: str) -> bool:
        """A lost stream: reopen it and count it; False when stopped or out of attempts."""
        self.status.set_state(RECONNECTING)
        log.warning("%s lost (%s); reconnecting", redact(self.url), reason)
        self._container.close()
        if not self._reopen():
            return False
        self.status.count_reconnect()
        log.info("%s reconnected", redact(self.url))
        return True

    def _reopen(self) -> bool:
        """Open with backoff; False when stopped or out of attempts."""
        delay, attempt = self.options.reconnect_initial, 0
        while not self._stopped.wait(delay):
            attempt += 1
            try:
                self._container = self._open()
            except (av.error.FFmpegError, SourceError, OSError) as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)
                if self.options.reconnect_attempts and attempt >= self.options.reconnect_attempts:
                    log.error("%s: giving up after %d attempts", redact(self.url), attempt)
                    return False
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            return True
        return False

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        if self._container is not None:
            self._container.close()
