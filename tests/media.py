"""Small real clips for tests, cut from the bundled sample (real footage, not synthetic)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from capture.sample import SAMPLE_PATH


def short_clip(path: Path, frames: int, width: int = 320, height: int = 136, fps: int = 25) -> Path:
    """Re-encode the first ``frames`` frames of the sample clip, scaled, as H.264 MP4."""
    with av.open(str(SAMPLE_PATH)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream("libx264", rate=fps)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, fps)
            dst.mux(out.encode(small))
        dst.mux(out.encode(None))
    return path


def count_frames(path: Path) -> tuple[int, int, int, str]:
    """(frames, width, height, codec) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.width, stream.height, stream.codec_context.name
