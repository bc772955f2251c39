"""Small real clips for tests, cut from the bundled sample (real footage, not synthetic), and
readers of what depthstream writes that do not use its writers' libraries."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from depthstream.capture.sample import SAMPLE_PATH


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


def first_frame(width: int = 320, height: int = 136) -> np.ndarray:
    """The sample clip's first frame, scaled, as RGB."""
    with av.open(str(SAMPLE_PATH)) as src:
        frame = next(src.decode(video=0))
        return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


def encode_rgb(path: Path, frames: Iterable[np.ndarray], fps: int = 25) -> Path:
    """RGB frames to an H.264 MP4 (the size of the first frame)."""
    with av.open(str(path), "w") as dst:
        out = None
        for i, rgb in enumerate(frames):
            if out is None:
                out = dst.add_stream("libx264", rate=fps)
                out.height, out.width = rgb.shape[:2]
                out.pix_fmt = "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            dst.mux(out.encode(frame))
        if out is not None:
            dst.mux(out.encode(None))
    return path


def exposure_flicker(still: np.ndarray, frames: int, swing: float = 0.15, seed: int = 0):
    """``still`` over and over, each frame's brightness scaled by a random gain in
    1 +- ``swing`` (what auto-exposure does to a static camera)."""
    gains = np.random.default_rng(seed).uniform(1 - swing, 1 + swing, frames)
    for gain in gains:
        yield np.clip(still.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def read_ply(path: Path) -> np.ndarray:
    """A binary little-endian PLY's vertices, read here without the writer's library."""
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[0] == "ply" and "format binary_little_endian 1.0" in lines
    count = int(next(line for line in lines if line.startswith("element vertex")).split()[2])
    kinds = {"float": "<f4", "uchar": "u1"}
    fields = [(p.split()[2], kinds[p.split()[1]]) for p in lines if p.startswith("property")]
    return np.frombuffer(body, dtype=fields, count=count)
