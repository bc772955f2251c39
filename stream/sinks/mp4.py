"""H.264 MP4 recording of rendered frames with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Result
from depthstream.stream.sinks.timeline import TIME_BASE, Timeline, finish


class Mp4Recorder:
    """Encodes views to an H.264/yuv420p MP4; the stream opens on the first frame.

    ``paced``: frames at their capture times, else at the nominal rate (see
    :class:`Timeline`).  yuv420p needs even dimensions: an odd last row or
    column is cropped.
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
        self.timeline = Timeline(fps, paced)
        self.options = {"crf": str(crf), "preset": preset}
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"cannot write {self.path}: {exc}") from None
        self._stream: av.VideoStream | None = None

    @property
    def frames(self) -> int:
        return self.timeline.frames

    def write(self, result: Result) -> None:
        """Sink: record the result's view."""
        self.add(result.view, result.frame.captured_at)

    def add(self, bgr: np.ndarray, captured_at: float | None = None) -> None:
        """Append one BGR frame (``captured_at``: its monotonic capture time, when paced);
        a file that cannot be written (gone, disk full) is a one-line error naming it."""
        try:
            self._add(bgr, captured_at)
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"cannot write {self.path}: {exc}") from None

    def _add(self, bgr: np.ndarray, captured_at: float | None) -> None:
        h, w = (bgr.shape[0] // 2) * 2, (bgr.shape[1] // 2) * 2
        if self._stream is None:
            self._stream = self._container.add_stream(
                "libx264", rate=self.timeline.rate, options=self.options
            )
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = TIME_BASE
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr[:h, :w]), format="bgr24")
        frame.pts, frame.time_base = self.timeline.next(captured_at), TIME_BASE
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file (a recording that got no frame is removed)."""
        finish(self._container, self._stream, self.path)
