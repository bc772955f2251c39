"""The benchmark's tables (Markdown, readable in a terminal and pasteable into README)."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from depthstream.stream.stability import columns

CPU_FLAGS = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


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


def cpu_line(m: dict[str, Any]) -> str:
    """What the CPU offers the fast paths: int8 gains need VNNI dot products, the bf16
    paths need bf16 instructions (they refuse to start without)."""
    flags = set(m["cpu_flags"])
    vnni = flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
    bf16 = flags & {"avx512_bf16", "amx_bf16"}
    return (
        f"CPU {m['cpu']}, {m['cores']} cores; {', '.join(m['cpu_flags']) or 'no AVX2'}: "
        f"int8 dot products {'yes' if vnni else 'no (int8 gains little)'}, "
        f"bf16 {'yes' if bf16 else 'no (bf16 paths refuse)'}"
    )


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
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
    return markdown_table(header, rows)


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
    return markdown_table(header, rows)


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
    return markdown_table(["path", *keys], rows)


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
    return markdown_table(header, rows)


def ratio_table(ratios: dict[str, dict[str, Any]]) -> str:
    """The pipeline against the model alone and against the CPU bound, one row per path:
    the figures the project's aims (see :func:`shortfalls`) are stated in."""
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
    return markdown_table(header, rows)


def stability_table(clips: dict[str, dict[str, Any]]) -> str:
    return markdown_table(*columns(clips))


def stage_table(stages: dict[str, dict[str, float]]) -> str:
    rows = [[name, c["cpu_ms"], c["wall_ms"]] for name, c in stages.items()]
    return markdown_table(["stage", "CPU ms", "wall ms"], rows)


def tables(
    report: dict[str, Any], keys: list[str], main_key: str, sections: tuple[str, ...] = ()
) -> str:
    """Every table of a bench run, with a line saying what each measures; ``sections``
    (rendered elsewhere) follow the camera section."""
    m = report["machine"]
    parts = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}); "
        f"torch {m['versions']['torch']}, onnxruntime {m['versions']['onnxruntime']}, "
        f"openvino {m['versions']['openvino']}; {m['date']}",
        f"Weights: {report['weights']}. Frames: {report['frames']['measured']} from "
        f"{', '.join(report['frames']['clips'])}.",
        "",
        "Model only (batch 1, median of interleaved rounds):",
        "",
        model_table(report["model"], keys),
        "",
        f"Fidelity against fp32 eager at {main_key} (bar for a default: Pearson r >= "
        f"{report['fidelity_bar']['pearson_min']}); stand-in = synthetic weights with batch "
        "norm re-estimated on real frames:",
        "",
        fidelity_table(report["model"], main_key, report["standin_fidelity"]),
        "",
        "Pearson r (min) against fp32 eager at every input size, timed weights / stand-in:",
        "",
        pearson_table(report["model"], keys, report["standin_fidelity"]),
    ]
    for label, runs in report["pipeline"].items():
        parts += [
            "",
            f"Pipeline, {label}, on {report['pipeline_clip']['name']} "
            f"(network input {report['pipeline_clip']['network_shape']}):",
            "",
            pipeline_table(runs, report["naive"]),
        ]
    if report["stages"]:
        parts += ["", "CPU per frame around the model:", "", stage_table(report["stages"])]
    if report.get("stability"):
        parts += [
            "",
            "Temporal stability and fidelity, on the first pipeline path (instability: mean "
            "frame-to-frame change on pixels static in the image; warp: flow-warped "
            "error; both in units of the "
            "depth's 2-98% range; raw = each frame in its own range, ema = the EMA colour "
            "range alone, stabilized = stabilized depth in the EMA range; r: Pearson r of "
            "stabilized and per-frame depth; imprint: edge strength beyond the frame's own "
            "depth, as a share of it; smoothed: frames the camera was still, the rest passed "
            "through):",
            "",
            stability_table(report["stability"]),
        ]
    if report.get("cameras"):
        parts += ["", camera_section(report["cameras"])]
    for section in sections:
        parts += ["", section]
    if report["ratios"]:
        parts += [
            "",
            "The pipeline against the same path's model-only time (clip shape) and against "
            "the CPU bound of the model plus the stages above:",
            "",
            ratio_table(report["ratios"]),
        ]
    if report["skipped"]:
        parts += ["", "Skipped: " + "; ".join(report["skipped"])]
    return "\n".join(parts)


HOW_TO_READ = """\
## How to read this

- Every path runs in its own worker process, a fresh one for each input
  shape (a run holds one shape); paths are interleaved over rounds and the
  tables give medians.  Peak RSS is each process's own `VmHWM`, measured
  after every cache was built.
- This machine's speed drifts from day to day and within a run: compare
  paths on this page with each other, as ratios, not with another day's
  page.
- Fidelity compares each path with the fp32 eager network on the same
  frames.  The official weights cannot be downloaded where this is built,
  so it is measured on the untrained synthetic weights and on a stand-in
  (the same weights with batch norm re-estimated on real frames), which
  exaggerate reduced-precision error; run the bench with your weights to
  see it for them.
- The pipeline rows are `depthstream run` and `serve` started as a user
  starts them, on the first clip; "inference p50" is the pipeline's own
  inference step while the other threads share the cores.  The naive loop
  is the usual single-thread tutorial loop fed at the camera's pace.
- The CPU bound is the most frames per second the cores can give when each
  frame costs the model's CPU time plus the stages' around it."""

# The aims the project holds itself to: offline at least this
# share of the model-only rate, live frame age at most this multiple of the model's time,
# and peak memory under this many MB.
OFFLINE_SHARE = 0.95
AGE_RATIO = 1.5
RSS_MB = 600.0


def shortfalls(report: dict[str, Any], keys: list[str]) -> list[str]:
    """What this run measured to fall short of the aims, one sentence each."""
    found = []
    bar = report["fidelity_bar"]["pearson_min"]
    for r in report["model"]:
        low = [
            k
            for k in keys
            if min(
                r["fidelity"][k]["pearson_min"],
                report["standin_fidelity"].get(r["path"], {}).get(k, {}).get("pearson_min", 1.0),
            )
            < bar
        ]
        if low:
            found.append(
                f"{r['path']} is below the fidelity bar (Pearson r {bar}) at {', '.join(low)}; "
                "it stays opt-in."
            )
    for label, ratio in report["ratios"].items():
        share = ratio["offline_fps_over_model_fps"]
        if share < OFFLINE_SHARE:
            bound = ratio["offline_fps_over_cpu_bound"]
            found.append(
                f"{label}: offline runs at {share:.2f} of its model-only rate "
                f"({bound} of the CPU bound), short of {OFFLINE_SHARE}."
            )
        age = ratio["live_age_p50_over_model_ms"]
        if age > AGE_RATIO:
            found.append(
                f"{label}: live frame age p50 is {age} times its model-only time, "
                f"above {AGE_RATIO}."
            )
    for label, runs in report["pipeline"].items():
        heavy = [
            f"{name} {r['peak_rss_mb']:.0f} MB"
            for name, r in runs.items()
            if name != "offline_cold" and r["peak_rss_mb"] > RSS_MB
        ]
        if heavy:
            found.append(f"{label}: peak RSS above {RSS_MB:.0f} MB ({', '.join(heavy)}).")
        live, served = runs["live"]["fps"], runs["serve_1"]["fps"]
        if served < 0.95 * live:
            found.append(
                f"{label}: serve with one viewer processes {served} fps against {live} live."
            )
    return found


CAMERAS_HEADING = "## Several cameras"


def camera_section(runs: dict[str, Any]) -> str:
    """The multi-camera table and the three aims, each as measured."""
    rows = []
    for key, run in runs.items():
        cams = run["cameras"]
        kind = "one serve" if key.startswith("one_process") else "separate serves"
        rows.append(
            [
                f"{len(cams)} camera(s), {kind}",
                " / ".join(f"{c['fps']:.1f}" for c in cams),
                " / ".join(f"{c['age_p50_ms']:.0f}, {c['age_p95_ms']:.0f}" for c in cams),
                f"{run['total_fps']:.1f}",
                f"{run['peak_rss_mb']:.0f}",
            ]
        )
    parts = [
        CAMERAS_HEADING,
        "",
        "`serve --camera ...` with N cameras in one process (one model, turns first come "
        "first served) against N `serve` processes of one camera each, run at the same time; "
        "every camera plays the same clip live, nobody watching.",
        "",
        markdown_table(
            ["setup", "fps per camera", "age p50, p95 per camera (ms)", "total fps", "peak RSS MB"],
            rows,
        ),
    ]
    one, two = runs.get("one_process_1"), runs.get("one_process_2")
    if one and two:
        inference = one["cameras"][0]["inference_p50_ms"]
        worst_p95 = max(c["age_p95_ms"] for c in two["cameras"])
        parts += [
            "",
            "Aims with two cameras in one process, against one camera:",
            "",
            f"- total fps {two['total_fps']:.1f} vs {one['total_fps']:.1f} "
            f"({two['total_fps'] / one['total_fps']:.2f}x; aim: within 10%)",
            f"- age p95 {worst_p95:.0f} ms = {worst_p95 / inference:.1f}x one camera's "
            f"inference p50 of {inference:.0f} ms (aim: at most 3x)",
            f"- peak RSS {two['peak_rss_mb']:.0f} vs {one['peak_rss_mb']:.0f} MB "
            f"({two['peak_rss_mb'] / one['peak_rss_mb']:.2f}x; aim: within 15%)",
        ]
    return "\n".join(parts)


def with_section(page: str, heading: str, section: str) -> str:
    """``page`` with its section under ``heading`` replaced (or put before the
    shortfalls)."""
    start = page.find(heading)
    if start >= 0:
        end = page.find("\n## ", start + len(heading))
        return page[:start] + section + ("\n" + page[end:] if end >= 0 else "\n")
    anchor = page.find("## Known to fall short")
    if anchor < 0:
        return page.rstrip("\n") + "\n\n" + section + "\n"
    return page[:anchor] + section + "\n\n" + page[anchor:]


def document(
    report: dict[str, Any],
    keys: list[str],
    main_key: str,
    command: str,
    sections: tuple[str, ...] = (),
) -> str:
    """The Markdown page a bench run writes: the command, how to read it, the tables, and
    what the run measured to fall short."""
    falls = shortfalls(report, keys)
    parts = [
        "# Performance",
        "",
        "Written by the benchmark; regenerate it with:",
        "",
        "```sh",
        command,
        "```",
        "",
        HOW_TO_READ,
        "",
        "## Tables",
        "",
        tables(report, keys, main_key, sections),
        "",
        "## Known to fall short",
        "",
        *([f"- {line}" for line in falls] or ["- Nothing this run measured."]),
    ]
    return "\n".join(parts) + "\n"
