"""The baseline: the single loop most tutorials write, measured on a live-paced clip.

read a frame -> transform -> eager model -> per-frame min/max -> colour map
-> show -> repeat.  A camera delivers frames in real time whether or not the
loop is ready, so frame ``i`` counts as captured at ``start + i / fps``; when
the loop is slower than the camera its frames grow old without bound, which
is exactly what the pipeline's drop-oldest queue prevents.  Headless, so
"show" is left out (it would only add to this loop's time).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from depthstream.stream.model.locate import WeightsChoice
from depthstream.stream.model.weights import load_model
from depthstream.stream.runtimes.base import thread_count
from depthstream.stream.stats import peak_rss_mb
from depthstream.stream.transform import to_net_input


def run(clip: str, seconds: float, weights: str, threads: int) -> dict:
    torch.set_num_threads(thread_count(threads))
    path = None if weights == "synthetic" else Path(weights)
    model = load_model(WeightsChoice(path, "bench")).model
    capture = cv2.VideoCapture(clip)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    start = time.monotonic()
    index, ages, infer_ms = 0, [], []
    while time.monotonic() - start < seconds:
        captured_at = start + index / fps
        wait = captured_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        ok, bgr = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = capture.read()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t0 = time.perf_counter()
        with torch.inference_mode():
            depth = model(torch.from_numpy(to_net_input(rgb))[None])[0].numpy()
        infer_ms.append((time.perf_counter() - t0) * 1000.0)
        depth = cv2.resize(depth, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)
        span = float(depth.max() - depth.min()) or 1.0
        cv2.applyColorMap(
            ((depth - depth.min()) / span * 255).astype(np.uint8), cv2.COLORMAP_INFERNO
        )
        ages.append((time.monotonic() - captured_at) * 1000.0)
        index += 1
    elapsed = time.monotonic() - start
    p50, p95 = np.percentile(ages, [50, 95])
    return {
        "fps": round(index / elapsed, 2),
        "frames_processed": index,
        "inference_ms_p50": round(float(np.median(infer_ms)), 1),
        "frame_age_ms": {"p50": round(float(p50), 1), "p95": round(float(p95), 1)},
        "frame_age_last_ms": round(ages[-1], 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(run(spec["clip"], spec["seconds"], spec["weights"], spec["threads"])))
