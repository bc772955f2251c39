"""A progress bar on stderr for offline runs, one tick per processed frame."""

from __future__ import annotations

import sys

from tqdm import tqdm

from depthstream.stream.pipeline import Result


class ProgressBar:
    def __init__(self, total: int | None) -> None:
        self._bar = tqdm(
            total=total, unit="frame", desc="depth", file=sys.stderr, dynamic_ncols=True
        )

    def write(self, result: Result) -> None:
        self._bar.update()

    def close(self) -> None:
        self._bar.close()
