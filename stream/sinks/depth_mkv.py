"""Lossless depth recording: FFV1, 16-bit grey, in Matroska, with its unit in the file.

Each shown frame's (stabilized) depth is written at frame size, so a pixel of
the depth recording is the same pixel of the heat-map recording and of the
calibration points, with the same timestamps.  A pixel ``p`` means
``p / scale + offset`` in the recorded unit: millimetres when calibrated
(``scale`` 1, ``offset`` 0; 0 = no depth, 65535 = 65.535 m or beyond), else
relative inverse depth with one factor for the whole file, chosen on the
first frame with room for the range to move.  Unit, scale and offset are
Matroska tags of the file and, for readers that do not read tags, a sidecar
``OUT.json`` (written when the first frame is, and completed at the end).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from depthstream.stream.calibration import Fit
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Result
from depthstream.stream.sinks.timeline import TIME_BASE, Timeline, finish

MILLIMETRES = "millimetre"
RELATIVE = "relative inverse depth"
FULL = 65535
HEADROOM = 3.0


@dataclass(frozen=True)
class DepthEncoding:
    """How a recorded pixel turns back into a number: ``p / scale + offset`` in ``unit``."""

    unit: str
    scale: float
    offset: float

    @classmethod
    def for_first(cls, depth: np.ndarray, fit: Fit | None) -> DepthEncoding:
        if fit is not None:
            return cls(MILLIMETRES, 1.0, 0.0)
        lo, hi = (float(v) for v in np.percentile(depth, [0.1, 99.9]))
        span = max(hi - lo, 1e-6)
        offset = lo - (HEADROOM - 1) / 2 * span
        return cls(RELATIVE, FULL / (HEADROOM * span), offset)

    def pixels(self, depth: np.ndarray, fit: Fit | None) -> np.ndarray:
        if self.unit == MILLIMETRES:
            if fit is None:
                raise ValueError("a millimetre recording needs a calibration")
            mm = fit.metres(depth) * 1000.0
            values = np.where(np.isfinite(mm), mm, 0.0)
        else:
            values = (depth.astype(np.float64) - self.offset) * self.scale
        return np.clip(np.rint(values), 0, FULL).astype(np.uint16)


class DepthRecorder:
    """Sink: every result's depth as one FFV1 gray16le frame.

    ``calibration``: the stored conversion, used when the result carries none
    (no obstacle readout).  The unit is fixed by the first frame.
    """

    def __init__(
        self, path: str | Path, fps: float, paced: bool, calibration: Fit | None = None
    ) -> None:
        self.path = Path(path)
        self.sidecar = self.path.with_suffix(".json")
        self.timeline = Timeline(fps, paced)
        self._calibration = calibration
        try:
            self.path.touch()  # PyAV opens the file only at the first frame: fail here instead
            self._container = av.open(str(self.path), mode="w", format="matroska")
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"cannot write {self.path}: {exc}") from None
        self._stream: av.VideoStream | None = None
        self.encoding: DepthEncoding | None = None
        self._size: tuple[int, int] | None = None

    def write(self, result: Result) -> None:
        depth = result.depth.resized
        reading = result.obstacles
        fit = reading.calibration if reading is not None else None
        fit = fit or self._calibration
        if self._stream is None:
            self._open(depth, fit)
        assert self._stream is not None and self.encoding is not None
        if depth.shape != self._size:
            raise ValueError(f"depth size changed to {depth.shape} from {self._size}")
        pixels = self.encoding.pixels(depth, fit)
        frame = av.VideoFrame.from_ndarray(pixels, format="gray16le")
        frame.pts, frame.time_base = self.timeline.next(result.frame.captured_at), TIME_BASE
        self._container.mux(self._stream.encode(frame))

    def _open(self, depth: np.ndarray, fit: Fit | None) -> None:
        self.encoding = DepthEncoding.for_first(depth, fit)
        self._size = depth.shape
        stream = self._container.add_stream("ffv1", rate=self.timeline.rate)
        stream.height, stream.width = depth.shape
        stream.pix_fmt = "gray16le"
        stream.codec_context.time_base = TIME_BASE
        for key, value in self._tags().items():
            self._container.metadata[key] = value
        self._stream = stream
        self._write_sidecar()

    def _tags(self) -> dict[str, str]:
        assert self.encoding is not None
        e = self.encoding
        return {
            "DEPTH_UNIT": e.unit,
            "DEPTH_SCALE": repr(e.scale),
            "DEPTH_OFFSET": repr(e.offset),
            "DEPTH_FORMULA": "value = pixel / DEPTH_SCALE + DEPTH_OFFSET",
        }

    def _write_sidecar(self) -> None:
        assert self.encoding is not None and self._size is not None
        record = {
            **asdict(self.encoding),
            "formula": "value = pixel / scale + offset",
            "zero_means": "no depth" if self.encoding.unit == MILLIMETRES else "the range floor",
            "width": self._size[1],
            "height": self._size[0],
            "frames": self.timeline.frames,
            "video": self.path.name,
        }
        tmp = self.sidecar.with_name(f".{self.sidecar.name}.tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.sidecar)

    def close(self) -> None:
        """Flush, finish the file and complete the sidecar (no frame: nothing is left)."""
        if finish(self._container, self._stream, self.path):
            self._write_sidecar()
