"""H.264 MP4 recording of rendered frames with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stream.errors import UserError
from stream.pipeline import Result

TIME_BASE = Fraction(1, 1000)


class Mp4Recorder:
    """Encodes views to an H.264/yuv420p MP4; the stream opens on the first frame.

    ``paced``: each frame is placed at its capture time, so a live recording
    plays at the speed the scene happened, gaps included; otherwise frames
    are spaced at the nominal rate (every frame of a file, offline).
    yuv420p needs even dimensions: an odd last row or column is cropped.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        crf: int = 23,
        preset: str = "superfast",
        paced: bool = False,
    ) -> None:
        self.path = Path(path)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.options = {"crf": str(crf), "preset": preset}
        self.paced = paced
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"cannot write {self.path}: {exc}") from None
        self._stream: av.VideoStream | None = None
        self._first_capture: float | None = None
        self._last_pts = -1
        self.frames = 0

    def write(self, result: Result) -> None:
        """Sink: record the result's view."""
        t = None
        if self.paced:
            if self._first_capture is None:
                self._first_capture = result.frame.captured_at
            t = result.frame.captured_at - self._first_capture
        self.add(result.view, t)

    def add(self, bgr: np.ndarray, t: float | None = None) -> None:
        """Append one BGR frame shown at ``t`` seconds after the recording's start."""
        h, w = (bgr.shape[0] // 2) * 2, (bgr.shape[1] // 2) * 2
        if self._stream is None:
            self._stream = self._container.add_stream(
                "libx264", rate=self.rate, options=self.options
            )
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = TIME_BASE
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr[:h, :w]), format="bgr24")
        seconds = self.frames / self.rate if t is None else t
        frame.pts = self._last_pts = max(round(seconds / TIME_BASE), self._last_pts + 1)
        frame.time_base = TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (a recording that got no frame is removed)."""
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()
        if self._stream is None:
            self.path.unlink(missing_ok=True)
