"""USB webcams (V4L2) through OpenCV.

The driver's buffer is set to one frame so a read returns the newest picture,
not one queued seconds ago; width, height, fps and MJPG are requested as
configured (the driver may round them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import cv2

from depthstream.capture.errors import SourceError
from depthstream.capture.options import CameraOptions
from depthstream.capture.source import ENDED, Frame, SourceStatus

log = logging.getLogger("depthstream")


class CameraSource:
    """Frames from a V4L2 device (an index or ``/dev/videoN``).

    ``backend`` is V4L2 for real devices; the tests pass OpenCV's FFmpeg
    backend with a file, because no camera device exists on CI machines.
    """

    live = True
    frame_count = None

    def __init__(
        self, device: int | str, options: CameraOptions | None = None, backend: int = cv2.CAP_V4L2
    ) -> None:
        self.device = device
        self.options = options or CameraOptions()
        self.status = SourceStatus()
        self._stopped = threading.Event()
        self._cap = cv2.VideoCapture(device, backend)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {device}: cannot open (no such device, or it is busy)")
        o = self.options
        if o.mjpg:
            self._cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, o.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, o.height),
            (cv2.CAP_PROP_FPS, o.fps),
        ):
            if value:
                self._cap.set(prop, value)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    @property
    def fps(self) -> float:
        return self._cap.get(cv2.CAP_PROP_FPS) or 30.0

    @property
    def size(self) -> tuple[int, int]:
        return (
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        )

    def __iter__(self) -> Iterator[Frame]:
        seq, failures = 0, 0
        while not self._stopped.is_set():
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                failures += 1
                if failures >= self.options.max_failed_reads:
                    log.error("camera %s: no frames any more (unplugged?)", self.device)
                    break
                continue
            # Failed reads the camera recovered from were frames skipped mid-stream.
            self.status.count_corrupt(failures)
            failures = 0
            pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 or None
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield Frame(rgb=rgb, seq=seq, pts=pts, captured_at=time.monotonic())
            seq += 1
        self.status.set_state(ENDED)

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        self._cap.release()
