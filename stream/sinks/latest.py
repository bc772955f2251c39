"""The newest result for a consumer that pulls at its own pace (a robot's control loop).

Only the newest waits: a consumer slower than the pipeline skips stale
results instead of acting on old ones, and never slows the pipeline.
"""

from __future__ import annotations

from depthstream.stream.frame_queue import FrameQueue
from depthstream.stream.pipeline import Result


class LatestResult:
    def __init__(self) -> None:
        self._slot: FrameQueue[Result] = FrameQueue(1, drop_oldest=True)

    def write(self, result: Result) -> None:
        self._slot.put(result)

    def close(self) -> None:
        self._slot.close()

    @property
    def closed(self) -> bool:
        return self._slot.closed

    def get(self, timeout: float) -> Result | None:
        """The newest result not taken yet, or None after ``timeout`` (or once closed and taken)."""
        return self._slot.get(timeout=timeout)
