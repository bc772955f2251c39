"""The benchmark's tables (Markdown, readable in a terminal and pasteable into README)."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine() -> dict[str, Any]:
    """What the numbers came from."""
    model, flags = platform.processor(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    versions = {}
    for package in ("torch", "onnxruntime", "openvino", "numpy", "opencv-python"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "python": platform.python_version(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d"),
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def model_table(results: list[dict[str, Any]], keys: list[str]) -> str:
    header = ["path"] + [f"{k} p50 / p95 ms (fps)" for k in keys] + ["peak RSS MB (one shape)"]
    rows = []
    for r in results:
        cells = []
        for k in keys:
            s = r["shapes"][k]
            cells.append(f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} ({s['fps']:.1f})")
        rows.append([r["path"], *cells, r["peak_rss_mb"]])
    return _table(header, rows)


def fidelity_table(results: list[dict[str, Any]], key: str, standin: dict[str, Any]) -> str:
    header = [
        "path",
        "timed weights: max rel err",
        "Pearson r (min)",
        "AbsRel",
        "stand-in: max rel err",
        "Pearson r (min)",
        "AbsRel",
    ]
    rows = []
    for r in results:
        f = r["fidelity"][key]
        s = standin.get(r["path"], {}).get(key)
        rows.append(
            [
                r["path"],
                f"{f['max_rel_err']:.2e}",
                f"{f['pearson_min']:.4f}",
                f"{f['absrel']:.4f}",
                f"{s['max_rel_err']:.2e}" if s else "-",
                f"{s['pearson_min']:.4f}" if s else "-",
                f"{s['absrel']:.4f}" if s else "-",
            ]
        )
    return _table(header, rows)


def pearson_table(results: list[dict[str, Any]], keys: list[str], standin: dict[str, Any]) -> str:
    """The fidelity bar's measure at every size: a path can pass at one size and not another."""
    rows = []
    for r in results:
        cells = []
        for k in keys:
            s = standin.get(r["path"], {}).get(k)
            cells.append(
                f"{r['fidelity'][k]['pearson_min']:.4f} / "
                + (f"{s['pearson_min']:.4f}" if s else "-")
            )
        rows.append([r["path"], *cells])
    return _table(["path", *keys], rows)


def pipeline_table(runs: dict[str, dict[str, Any]], naive: dict[str, Any] | None) -> str:
    header = [
        "run",
        "fps",
        "frame age p50 / p95 ms",
        "inference p50 ms",
        "dropped",
        "CPU %",
        "peak RSS MB",
        "first output s",
        "viewer fps",
    ]
    rows = []
    for label, r in runs.items():
        age = r["frame_age_ms"]
        rows.append(
            [
                label,
                r["fps"],
                f"{age['p50']} / {age['p95']}",
                r["inference_ms"]["p50"],
                r["frames_dropped"],
                r["cpu_percent"],
                r["peak_rss_mb"],
                r["first_output_s"],
                ", ".join(str(v) for v in r.get("viewer_fps", [])) or "-",
            ]
        )
    if naive is not None:
        age = naive["frame_age_ms"]
        rows.append(
            [
                "naive loop (one thread, eager), live",
                naive["fps"],
                f"{age['p50']} / {age['p95']}",
                naive["inference_ms_p50"],
                "n/a (falls behind)",
                "-",
                naive["peak_rss_mb"],
                "-",
                "-",
            ]
        )
    return _table(header, rows)


def ratio_table(ratios: dict[str, dict[str, Any]]) -> str:
    """The pipeline against the model alone and against the CPU bound, one row per path:
    the figures the issue's overhead aims are stated in."""
    header = [
        "path",
        "offline fps / model-only fps",
        "offline fps / CPU bound (bound fps)",
        "live age p50 / model-only p50",
        "live age p50 / model alone before, after it",
        "live age p50 / inference p50",
        "live fps / naive fps",
        "naive age p50 / live age p50",
    ]

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [
        [
            label,
            r["offline_fps_over_model_fps"],
            f"{cell(r['offline_fps_over_cpu_bound'])} ({cell(r['cpu_bound_fps'])})",
            r["live_age_p50_over_model_ms"],
            f"{r['live_age_p50_over_model_before_ms']} / {r['live_age_p50_over_model_after_ms']}",
            r["live_age_p50_over_inference_ms"],
            cell(r.get("live_fps_over_naive_fps")),
            cell(r.get("naive_age_p50_over_live_age_p50")),
        ]
        for label, r in ratios.items()
    ]
    return _table(header, rows)


def stage_table(stages: dict[str, dict[str, float]]) -> str:
    rows = [[name, c["cpu_ms"], c["wall_ms"]] for name, c in stages.items()]
    return _table(["stage", "CPU ms", "wall ms"], rows)
