"""``depthstream bench``: its measures are right on known inputs, and a short real run
produces every figure the README table reports.  No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depthstream.stream.bench.fidelity import aligned_absrel, compare
from depthstream.stream.bench.frames import pick_frames, split, square_inputs
from depthstream.stream.bench.model_bench import BenchPath, Worker
from depthstream.stream.bench.tolerances import FP32
from depthstream.stream.errors import UserError
from depthstream.stream.stats import cpu_seconds
from tests.conftest import SHARED, assert_clean_error, require, run_synthetic

SAMPLE = Path(__file__).resolve().parents[1] / "capture" / "data" / "sample.mp4"


def test_fidelity_of_an_identical_output_is_perfect() -> None:
    ref = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32) + 0.5
    f = compare(ref.copy(), ref)
    assert (f.max_rel_err, f.pearson_min, f.absrel) == (0.0, 1.0, 0.0)


def test_absrel_ignores_scale_and_shift_but_not_noise() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((32, 32)) + 0.5
    assert aligned_absrel(3.0 * ref - 0.2, ref) < 1e-9
    noisy = ref + 0.05 * rng.standard_normal(ref.shape)
    assert 0.01 < aligned_absrel(noisy, ref) < 0.1
    f = compare(noisy[None], ref[None])
    assert 0.9 < f.pearson_min < 0.999 and f.max_rel_err > 0.05


def test_measured_and_fitting_frames_are_disjoint() -> None:
    frames = pick_frames([SAMPLE], 6)
    measure, fit = split(frames)
    assert len(measure) == len(fit) == 3
    assert not any(np.array_equal(a, b) for a in measure for b in fit)
    assert square_inputs(measure, 64).shape == (3, 3, 64, 64)


def test_cpu_time_resolves_a_few_milliseconds() -> None:
    """A fast path's short frames must not read as no CPU: the bench divides by them.
    Ten-millisecond clock ticks (``os.times``) read this as 0 or 10 ms, never between."""
    start = cpu_seconds()
    while cpu_seconds() - start < 0.002:
        pass
    assert 0.002 <= cpu_seconds() - start < 0.005


def test_bad_sizes_are_a_clean_error(tmp_path: Path) -> None:
    proc = run_synthetic("bench", "--sizes", "100", "--json", str(tmp_path / "b.json"))
    assert "multiple of 32 in 64..1024, got 100" in assert_clean_error(proc)


@pytest.mark.timeout(900)
def test_a_worker_holds_one_input_shape(tmp_path: Path) -> None:
    """So the bench cannot time two shapes in one process, which a run never does."""
    inputs = {"64x64": np.zeros((1, 3, 64, 64), np.float32)}
    inputs["64x128"] = np.zeros((1, 3, 64, 128), np.float32)
    np.savez(tmp_path / "inputs.npz", **inputs)
    spec = {"weights": "synthetic", "standin": False, "threads": 1}
    spec |= {"cache_dir": str(tmp_path / "cache"), "inputs": str(tmp_path / "inputs.npz")}
    worker = Worker(BenchPath("eager", "fp32"), spec)
    try:
        assert len(worker.ask(op="time", shape="64x64", count=1)["ms"]) == 1
        with pytest.raises(UserError, match=r"holds one input shape \(64x64\), asked for 64x128"):
            worker.ask(op="time", shape="64x128", count=1)
    finally:
        worker.close()


@pytest.mark.timeout(1800)
def test_a_short_bench_reports_every_figure(tmp_path: Path) -> None:
    """Real clips from ../shared when present; every path, the pipeline, serve, the baseline."""
    media = SHARED / "media" / "videos"
    require(media.is_dir(), f"{media} is missing")
    out = tmp_path / "bench.json"
    proc = run_synthetic(
        *("bench", "--media", str(media), "--paths", "torch:fp32,onnxruntime:int8"),
        *("--sizes", "64", "--rounds", "2", "--per-round", "2", "--frames-per-clip", "2"),
        *("--pipeline-paths", "torch:fp32", "--seconds", "6", "--offline-frames", "6"),
        *("--cameras", "1,2", "--models", ""),
        *("--json", str(out), "--markdown", str(tmp_path / "bench.md")),
        timeout=1700,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["weights"].startswith("synthetic")
    # The CPU's features are said before any figure: int8 and bf16 numbers depend on them.
    lines = [line for line in proc.stderr.splitlines() if line.startswith("depthstream: bench:")]
    cpu = lines[0]
    assert cpu.startswith("depthstream: bench: CPU "), lines[:3]
    flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    vnni = flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
    assert ("int8 dot products yes" in cpu) == bool(vnni)
    assert ("bf16 yes" in cpu) == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert report["frames"]["clips"] == sorted(report["frames"]["clips"])
    assert "damaged_megamind.avi" not in report["frames"]["clips"]
    clip_key = report["pipeline_clip"]["network_shape"]
    paths = {r["path"]: r for r in report["model"]}
    assert list(paths) == ["eager fp32", "torch fp32", "onnxruntime int8"]
    for r in paths.values():
        assert set(r["shapes"]) == {"64x64", clip_key}
        assert all(
            s["runs"] == 4 and s["p50_ms"] > 0 and s["cpu_ms"] > 0 for s in r["shapes"].values()
        )
        assert r["peak_rss_mb"] > 0
    assert paths["eager fp32"]["fidelity"]["64x64"]["max_rel_err"] == 0.0
    assert paths["torch fp32"]["fidelity"]["64x64"]["max_rel_err"] <= FP32.max_rel_err
    assert paths["onnxruntime int8"]["fidelity"]["64x64"]["pearson_min"] < 0.9999
    standin = report["standin_fidelity"]
    assert set(standin) == set(paths)
    assert all(set(by_shape) == {"64x64", clip_key} for by_shape in standin.values())
    assert standin["eager fp32"][clip_key]["max_rel_err"] == 0.0
    assert standin["onnxruntime int8"][clip_key]["pearson_min"] < 0.9999
    runs = report["pipeline"]["torch fp32"]
    assert set(runs) == {"offline_cold", "offline", "live", "serve_1", "serve_3"}
    assert runs["offline"]["frames_processed"] == 6 and runs["offline"]["frames_dropped"] == 0
    assert runs["offline_cold"]["first_output_s"] > 0 and runs["live"]["fps"] > 0
    assert len(runs["serve_1"]["viewer_fps"]) == 1 and len(runs["serve_3"]["viewer_fps"]) == 3
    assert all(fps > 0 for fps in runs["serve_3"]["viewer_fps"])
    assert report["naive"]["fps"] > 0 and report["naive"]["frames_processed"] > 0
    assert report["stages"]["stabilize"]["cpu_ms"] > 0
    stability = report["stability"]
    assert set(stability) == set(report["frames"]["clips"])
    for clip in stability.values():
        assert set(clip["variants"]) == {"raw", "ema", "stabilized"}
        assert all(v["pairs"] == 5 and v["instability"] > 0 for v in clip["variants"].values())
    page = (tmp_path / "bench.md").read_text()
    assert "Temporal stability" in page
    # Cameras: one serve with two against two serves with one, each camera with its figures.
    cameras = report["cameras"]
    assert set(cameras) == {"one_process_1", "one_process_2", "processes_2"}
    assert [len(cameras[k]["cameras"]) for k in sorted(cameras)] == [1, 2, 2]
    assert cameras["processes_2"]["processes"] == 2 and cameras["one_process_2"]["processes"] == 1
    assert all(c["fps"] > 0 and c["age_p95_ms"] > 0 for r in cameras.values() for c in r["cameras"])
    assert "## Several cameras" in page and "aim: within 10%" in page
    stages = report["stages"]
    assert list(stages) == [
        "decode",
        "network input",
        "stabilize",
        "depth resize + render",
        "encode",
    ]
    assert all(c["cpu_ms"] > 0 and c["wall_ms"] > 0 for c in stages.values())
    ratios = report["ratios"]["torch fp32"]
    assert set(ratios) >= {"offline_fps_over_model_fps", "live_fps_over_naive_fps"}
    per_frame = paths["torch fp32"]["shapes"][clip_key]["cpu_ms"]
    per_frame += sum(c["cpu_ms"] for c in stages.values())
    assert ratios["cpu_bound_fps"] == pytest.approx(
        1000.0 * report["machine"]["cores"] / per_frame, abs=0.05
    )
    live = runs["live"]
    assert ratios["live_age_p50_over_inference_ms"] == pytest.approx(
        live["frame_age_ms"]["p50"] / live["inference_ms"]["p50"], abs=0.006
    )
    for when in ("before", "after"):
        alone = live["model_alone_ms"][f"{when}_p50"]
        assert alone > 0
        assert ratios[f"live_age_p50_over_model_{when}_ms"] == pytest.approx(
            live["frame_age_ms"]["p50"] / alone, abs=0.006
        )
    markdown = (tmp_path / "bench.md").read_text()
    assert "| torch fp32 |" in markdown
    ratio_row = (
        f"| torch fp32 | {ratios['offline_fps_over_model_fps']} | "
        f"{ratios['offline_fps_over_cpu_bound']} ({ratios['cpu_bound_fps']}) | "
        f"{ratios['live_age_p50_over_model_ms']} | "
        f"{ratios['live_age_p50_over_model_before_ms']} / "
        f"{ratios['live_age_p50_over_model_after_ms']} | "
        f"{ratios['live_age_p50_over_inference_ms']} |"
    )
    assert ratio_row in markdown
    r = paths["onnxruntime int8"]["fidelity"][clip_key]["pearson_min"]
    s = standin["onnxruntime int8"][clip_key]["pearson_min"]
    assert f"| {r:.4f} / {s:.4f} |" in markdown  # the per-size r table, last column


@pytest.mark.timeout(900)
def test_the_models_section_rates_every_path_against_the_machines_limit(tmp_path: Path) -> None:
    """``--models-only``: each path's GFLOP/s is the eager network's counted arithmetic over
    its median time, its share is of the matrix-multiply rate measured in the run; the live
    run and stability come with it; the page keeps its other sections."""
    page = tmp_path / "p.md"
    page.write_text("# Performance\n\n## Tables\n\nkept\n\n## Known to fall short\n\n- x\n")
    proc = run_synthetic(
        *("bench", "--models-only", "--models", "midas-small", "--paths", "torch:fp32"),
        *("--sizes", "256,128", "--seconds", "4", "--offline-frames", "4"),
        *("--json", str(tmp_path / "b.json"), "--markdown", str(page)),
        timeout=850,
    )
    assert proc.returncode == 0, proc.stderr
    family = json.loads((tmp_path / "b.json").read_text())["models"]["midas-small"]
    rows = {(r["path"], r["shape"]): r for r in family["rows"]}
    shapes = ("256x256", "128x128")
    assert set(rows) == {(p, s) for p in ("eager fp32", "torch fp32") for s in shapes}
    limit = max(family["gemm_gflops"].values())
    for r in rows.values():
        assert r["gflops"] == pytest.approx(r["gflop"] / (r["p50_ms"] / 1000), rel=0.01)
        assert r["of_limit"] == pytest.approx(r["gflops"] / limit, abs=0.002)
    assert all(rows[("eager fp32", s)]["over_official"] == 1.0 for s in shapes)
    # A convolutional network's arithmetic grows with the pixels: 4x from 128 to 256.
    assert rows[("torch fp32", "256x256")]["gflop"] == pytest.approx(
        4 * rows[("torch fp32", "128x128")]["gflop"], rel=0.03
    )
    live = family["live"]
    assert live["size"] in (256, 128) and live["fps"] > 0
    alone = min(live["model_alone_ms"].values())  # the faster timing: nothing flatters the ratio
    assert live["age_over_model"] == pytest.approx(live["frame_age_ms"]["p50"] / alone, abs=0.01)
    assert set(next(iter(live["stability"].values()))["variants"]) == {"raw", "ema", "stabilized"}
    text = page.read_text()
    assert "kept" in text and text.index("## Models side by side") < text.index("## Known")
    assert "GFLOP/s" in text and "Aims, as measured" in text
