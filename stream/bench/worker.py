"""One benchmarked path in its own process, driven over stdin/stdout (JSON lines).

A process per path keeps each path's peak memory its own and lets the
orchestrator interleave paths: only one worker computes at a time, the
others wait on their pipe.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.bench.eager import EagerRuntime, gemm_gflops
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.locate import WeightsChoice
from depthstream.stream.model.registry import DEFAULT_MODEL, MODELS
from depthstream.stream.runtimes.base import Runtime, thread_count
from depthstream.stream.runtimes.registry import open_runtime
from depthstream.stream.stats import cpu_seconds, peak_rss_mb

EAGER = "eager"


def open_handle(spec: dict[str, Any], inputs: dict[str, np.ndarray]) -> WeightsHandle:
    path = spec["weights"]
    choice = WeightsChoice(None if path == "synthetic" else Path(path), "bench")
    handle = WeightsHandle.of_choice(choice, MODELS[spec.get("model", DEFAULT_MODEL)])
    if not spec["standin"]:
        return handle
    from depthstream.stream.bench.standin import reestimate_batchnorm

    return WeightsHandle.of_loaded(reestimate_batchnorm(handle.load(), inputs["fit"]))


def open_path(spec: dict[str, Any], handle: WeightsHandle) -> Runtime:
    threads = thread_count(spec["threads"])
    if spec["backend"] == EAGER:
        return EagerRuntime(handle, threads, spec["precision"])
    cache = Path(spec["cache_dir"])
    return open_runtime(spec["backend"], spec["precision"], handle, cache, threads)


def serve(runtime: Runtime, inputs: dict[str, np.ndarray]) -> None:
    """Answer commands until stdin closes.

    A worker holds one input shape, as a run does (see
    :func:`stream.bench.model_bench.time_paths` for what a second shape would
    cost); a command for another shape ends it with an error.  Counting arithmetic
    times nothing, and may ask for any shape.
    """
    held = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] != "arithmetic":  # counted, not timed: any shape
            held = held or cmd["shape"]
        if cmd["op"] != "arithmetic" and cmd["shape"] != held:
            sys.exit(f"a bench worker holds one input shape ({held}), asked for {cmd['shape']}")
        batch = inputs[cmd["shape"]]
        reply: dict[str, Any] = {}
        t0 = time.perf_counter()
        if cmd["op"] == "prepare":
            runtime.prepare(tuple(batch.shape[2:]))
            runtime.infer(batch[0])
            reply["seconds"] = time.perf_counter() - t0
        elif cmd["op"] == "time":
            times = []
            cpu = cpu_seconds()
            for net_input in batch[: cmd["count"]]:
                start = time.perf_counter()
                runtime.infer(net_input)
                times.append((time.perf_counter() - start) * 1000.0)
            reply["ms"] = times
            reply["cpu_s"] = cpu_seconds() - cpu
        elif cmd["op"] == "outputs":
            np.save(cmd["path"], np.stack([runtime.infer(x) for x in batch]))
        elif cmd["op"] == "arithmetic":
            assert isinstance(runtime, EagerRuntime), "an eager worker counts arithmetic"
            reply["gflop"] = runtime.gflop(batch[0])
            reply["gemm_gflops"] = gemm_gflops()
        reply["rss_mb"] = peak_rss_mb()
        print(json.dumps(reply), flush=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    spec = json.loads(sys.argv[1])
    with np.load(spec["inputs"]) as data:
        inputs = {key: data[key] for key in data.files}
    runtime = open_path(spec, open_handle(spec, inputs))
    print(json.dumps({"ready": True, "rss_mb": peak_rss_mb()}), flush=True)
    serve(runtime, inputs)


if __name__ == "__main__":
    main()
