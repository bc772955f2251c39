"""The bench page's section on the models side by side (see :mod:`stream.bench.models_bench`):
each network's paths against the machine's limit, their costs against each other, the
live runs, and the aims each as measured."""

from __future__ import annotations

from typing import Any

from depthstream.stream.bench.models_bench import EXACT, LIVE_FPS, OFFICIAL
from depthstream.stream.bench.report import markdown_table, stability_table
from depthstream.stream.bench.tolerances import DEFAULT_BAR

MODELS_HEADING = "## Models side by side"
AIM_OF_LIMIT, AIM_OVER_OFFICIAL, AIM_FAST, AIM_AGE = 0.8, 1.25, 1.5, 1.5
EXACT_PRECISIONS = (EXACT.precision, OFFICIAL.precision)


def _family_table(family: dict[str, Any]) -> str:
    sizes = list(dict.fromkeys(r["shape"] for r in family["rows"]))
    cells: dict[str, dict[str, str]] = {}
    for r in family["rows"]:
        cells.setdefault(r["path"], {})[r["shape"]] = (
            f"{r['p50_ms']:.0f} ms, {r['gflops']:.0f} GFLOP/s = {100 * r['of_limit']:.0f}%, "
            f"{r['over_official']:.2f}x, r {r['pearson_min']:.4f}"
        )
    rows = [[path, *(by.get(s, "") for s in sizes)] for path, by in cells.items()]
    gflop = {r["shape"]: r["gflop"] for r in family["rows"]}
    return markdown_table(["path", *(f"{s} ({gflop[s]:.1f} GFLOP)" for s in sizes)], rows)


def _exact(family: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["shape"]: r for r in family["rows"] if r["path"] == EXACT.label}


def _cost_table(models: dict[str, Any]) -> str:
    """Each size's exact-path time over the first model's at its live size."""
    first, base_family = next(iter(models.items()))
    base_key = f"{base_family['live_size']}x{base_family['live_size']}"
    base = _exact(base_family)[base_key]["p50_ms"]
    rows = [
        [name, shape, f"{r['p50_ms']:.0f}", f"{r['p50_ms'] / base:.1f}x"]
        for name, family in models.items()
        for shape, r in _exact(family).items()
    ]
    header = ["model", "input", f"{EXACT.label} p50 ms", f"over {first} at {base_key}"]
    return markdown_table(header, rows)


def _aims(name: str, family: dict[str, Any]) -> list[str]:
    """The issue's aims for one model, each with the figure this run measured."""
    exact = _exact(family)
    lines = [
        f"- {name}, exact path at {shape}: {100 * r['of_limit']:.0f}% of the limit (aim "
        f"{100 * AIM_OF_LIMIT:.0f}%), {r['over_official']:.2f}x {family['official']} "
        f"(aim {AIM_OVER_OFFICIAL}x)"
        for shape, r in exact.items()
    ]
    for shape, ref in exact.items():
        fast = [
            r
            for r in family["rows"]
            if r["shape"] == shape and r["pearson_min"] >= DEFAULT_BAR
            and r["precision"] not in EXACT_PRECISIONS
        ]  # fmt: skip
        if fast:
            best = min(fast, key=lambda r: r["p50_ms"])
            lines.append(
                f"- {name}, fastest path with r >= {DEFAULT_BAR} at {shape}: {best['path']}, "
                f"{ref['p50_ms'] / best['p50_ms']:.2f}x the exact path (aim {AIM_FAST}x)"
            )
    live = family["live"]
    lines.append(
        f"- {name}, live at {live['size']} ({live['network_shape']}): frame age p50 "
        f"{live['age_over_model']}x the model alone (aim {AIM_AGE}x)"
    )
    return lines


def _live_table(models: dict[str, Any]) -> str:
    rows = []
    for name, family in models.items():
        live = family["live"]
        alone = live["model_alone_ms"]
        rows.append(
            [
                name,
                f"{live['size']} ({live['network_shape']})",
                live["fps"],
                f"{live['frame_age_ms']['p50']:.0f} / {live['frame_age_ms']['p95']:.0f}",
                f"{alone['before_p50']:.0f} / {alone['after_p50']:.0f}",
                live["age_over_model"],
            ]
        )
    header = ["model", "live size", "fps", "age p50 / p95 ms", "alone before / after ms", "ratio"]
    return markdown_table(header, rows)


def models_section(models: dict[str, Any], measured: str) -> str:
    """The section, from the bench report's ``models`` part; ``measured`` says by which
    command, when and on what (the section can be measured alone)."""
    parts = [
        MODELS_HEADING,
        "",
        measured,
        "",
        "Each network at its bench sizes, model only, paths interleaved.  A cell: median "
        "time, the eager network's arithmetic over it as GFLOP/s and as a share of this "
        "machine's fp32 matrix-multiply rate (the limit; measured in the same run, before "
        "and after), the speed over the official eager computation, and Pearson r (min) "
        "against fp32 eager.  Reduced precision can pass the fp32 limit.",
    ]
    for name, family in models.items():
        gemm = family["gemm_gflops"]
        parts += [
            "",
            f"{name} (limit {max(gemm.values()):.0f} GFLOP/s; before {gemm['before']:.0f}, "
            f"after {gemm['after']:.0f}; official = {family['official']}):",
            "",
            _family_table(family),
        ]
    parts += [
        "",
        f"Cost against each other ({EXACT.label}):",
        "",
        _cost_table(models),
        "",
        f"Live (`run` on the first clip at the live size: the largest bench size at which "
        f"{EXACT.label} keeps {LIVE_FPS:.0f} fps model only here); age over the same model "
        "timed alone on the clip's shape just before and after the run, the faster of the two:",
        "",
        _live_table(models),
    ]
    for name, family in models.items():
        parts += ["", f"Stability, {name}:", "", stability_table(family["live"]["stability"])]
    parts += ["", "Aims, as measured:", ""]
    for name, family in models.items():
        parts += _aims(name, family)
    return "\n".join(parts)
