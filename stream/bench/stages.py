"""CPU cost of everything the pipeline does around the model, stage by stage.

On a machine whose cores the model already fills, these costs are what the
pipeline's throughput is short of the model's: with ``C`` cores, a model that
takes ``m`` CPU-ms per frame and stages that take ``s``, no arrangement of
threads can beat ``1000 * C / (m + s)`` frames per second.  The bench reports
that bound next to the measured offline rate, so the gap is explained by
numbers, not asserted.

Each stage runs the pipeline's own code over the same clip, one stage at a
time, and is charged the process's CPU time (helper threads such as the
decoder's and x264's included).  Rendering needs a depth map and this process
runs no model, so the frame's own grey image at the network's output size
stands in: rendering cost depends on the map's size, not its values.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from depthstream.capture.file import FileSource
from depthstream.stream.config import Config
from depthstream.stream.estimator import UNTRAINED_STAMP, DepthMap
from depthstream.stream.pipeline import leave_cores_to_the_model
from depthstream.stream.render.overlay import draw_figures
from depthstream.stream.render.renderer import DepthRenderer
from depthstream.stream.sinks.mp4 import Mp4Recorder
from depthstream.stream.stabilizer import Stabilizer
from depthstream.stream.stats import cpu_seconds
from depthstream.stream.transform import network_size, to_net_input


def _charge(run: Callable[[], int]) -> dict[str, float]:
    """Per-frame CPU and wall milliseconds of ``run`` (which returns its frame count)."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    frames = run()
    per = 1000.0 / max(frames, 1)
    return {
        "cpu_ms": round((cpu_seconds() - cpu) * per, 2),
        "wall_ms": round((time.perf_counter() - wall) * per, 2),
    }


def _stand_in_depth(rgb: np.ndarray, size: int) -> np.ndarray:
    """The frame's grey image at the network's output size, as float32."""
    h, w = network_size(rgb.shape[0], rgb.shape[1], size)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)


def stage_costs(clip: Path, cfg: Config, frames: int) -> dict[str, dict[str, float]]:
    """CPU-ms per frame of decode, network input, stabilization, depth resize + render, and
    H.264 encode
    (with ``cfg``'s preset, so presets can be compared), OpenCV threaded as the pipeline
    runs it."""
    leave_cores_to_the_model()
    decoded: list[np.ndarray] = []

    def decode() -> int:
        source = FileSource(clip)
        try:
            for frame in source:
                decoded.append(frame.rgb)
                if len(decoded) == frames:
                    break
        finally:
            source.close()
        return len(decoded)

    costs = {"decode": _charge(decode)}
    size = cfg.model.size()
    costs["network input"] = _charge(lambda: len([to_net_input(f, size) for f in decoded]))
    renderer = DepthRenderer.from_config(cfg.normalize, cfg.render, UNTRAINED_STAMP)
    raws = [_stand_in_depth(rgb, size) for rgb in decoded]
    views: list[np.ndarray] = []
    stabilizer = Stabilizer(cfg.temporal)
    costs["stabilize"] = _charge(
        lambda: len([stabilizer.apply(rgb, raw) for rgb, raw in zip(decoded, raws, strict=True)])
    )

    def render() -> int:
        for rgb, raw in zip(decoded, raws, strict=True):
            view = renderer.render(rgb, DepthMap(raw=raw, size=rgb.shape[:2])).image.copy()
            draw_figures(view, 25.0, 30.0, 40.0)
            views.append(view)
        return len(views)

    costs["depth resize + render"] = _charge(render)
    with tempfile.TemporaryDirectory(prefix="depthstream-stages-") as tmp:

        def encode() -> int:
            recorder = Mp4Recorder(
                Path(tmp) / "stages.mp4", 25.0, cfg.output.crf, cfg.output.preset
            )
            for view in views:
                recorder.add(view)
            recorder.close()
            return recorder.frames

        costs["encode"] = _charge(encode)
    return costs


def cpu_bound_fps(model_cpu_ms: float, stages: dict[str, dict[str, float]], cores: int) -> float:
    """The most frames per second ``cores`` can give when every frame costs the model's
    and every stage's CPU time."""
    per_frame = model_cpu_ms + sum(s["cpu_ms"] for s in stages.values())
    return round(1000.0 * cores / per_frame, 1)
