"""Real frames for the benchmark: clips from a media folder, or the bundled sample.

Frames are picked evenly across each clip so scenes vary; alternate picks go
to two disjoint sets, one to measure on and one to re-estimate the stand-in's
batch norm with, so the stand-in is never scored on the frames it was fitted to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthstream.capture.decode import spread_frames
from depthstream.capture.sample import SAMPLE_PATH
from depthstream.stream.errors import UserError
from depthstream.stream.transform import MIDAS, Preprocessing, to_net_input

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}


def clips(media: Path | None) -> list[Path]:
    """Every video in ``media`` (damaged samples excluded), or the bundled sample."""
    if media is None:
        return [SAMPLE_PATH]
    if not media.is_dir():
        raise UserError(f"--media {media} is not a folder")
    found = sorted(
        p for p in media.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and "damaged" not in p.name
    )
    if not found:
        raise UserError(f"--media {media} holds no video files")
    return found


def pick_frames(paths: list[Path], per_clip: int) -> list[np.ndarray]:
    """``per_clip`` RGB frames spread evenly over each clip."""
    return [frame for path in paths for frame in spread_frames(path, per_clip)]


def split(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(measure, fit): alternate frames."""
    return frames[0::2], frames[1::2]


def square_inputs(frames: list[np.ndarray], size: int, prep: Preprocessing = MIDAS) -> np.ndarray:
    """Centre squares of ``frames`` as ``(N, 3, size, size)`` network inputs made with the
    model's preprocessing ``prep``."""
    out = []
    for rgb in frames:
        h, w = rgb.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        out.append(to_net_input(rgb[top : top + s, left : left + s], size, prep))
    return np.stack(out)
