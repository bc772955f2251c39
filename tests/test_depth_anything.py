"""Depth Anything V2 Small and its metric heads against the official code: every parity case
of ``../shared/reference/depth_anything_v2_small_synthetic`` (made by the official
``infer_image`` with synthetic weights), through the model as the pipeline runs it (traced)
and through ``depthstream image``; wrong weights refused by name; metres without
calibration; two cameras on two models in one server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depthstream.capture.image import read_image
from depthstream.stream import assembly
from depthstream.stream.assembly import open_cameras
from depthstream.stream.config import ModelConfig, load_config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import open_estimator
from depthstream.stream.model.registry import MODELS
from depthstream.stream.runtimes.base import uses_bf16
from depthstream.stream.runtimes.registry import bf16_supported
from depthstream.stream.sinks.latest import LatestResult
from tests.conftest import SHARED, assert_clean_error, require, run_cli, run_synthetic

REFERENCE = SHARED / "reference" / "depth_anything_v2_small_synthetic"
HEADS = {
    "relative": "depth-anything-v2-small",
    "metric_hypersim": "depth-anything-v2-small-indoor",
    "metric_vkitti": "depth-anything-v2-small-outdoor",
}
TOLERANCE = 1e-4  # of the reference's range, as for MiDaS


def cases() -> list[tuple[str, dict]]:
    manifest = REFERENCE / "manifest.json"
    if not manifest.is_file():
        return [("missing", {})]
    models = json.loads(manifest.read_text())["models"]
    return [(kind, case) for kind in HEADS for case in models[kind]["cases"]]


def off_by(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / (want.max() - want.min()))


@pytest.fixture(scope="module")
def estimators() -> dict:
    require(REFERENCE.is_dir(), f"{REFERENCE} is missing")
    return {kind: {} for kind in HEADS}


@pytest.mark.parametrize(("kind", "case"), cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_parity_case_as_the_pipeline_runs_the_model(estimators, kind, case) -> None:
    """The traced model at the case's input size: the network output and the official
    resize of it, each within 1e-4 of the reference's range."""
    require(bool(case), f"{REFERENCE} is missing")
    size = case["input_size"]
    if size not in estimators[kind]:
        cfg = ModelConfig(name=HEADS[kind], input_size=size)
        estimators[kind][size] = open_estimator(cfg, "synthetic", still=True)
    depth = estimators[kind][size](read_image(REFERENCE / case["image"]))
    assert off_by(depth.output, np.load(REFERENCE / case["raw_output"])) <= TOLERANCE
    assert off_by(depth.output_resized(), np.load(REFERENCE / case["output_resized"])) <= TOLERANCE


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_each_runtime_at_fp32_matches_the_official_output(tmp_path: Path, backend: str) -> None:
    require(REFERENCE.is_dir(), f"{REFERENCE} is missing")
    case = next(c for k, c in cases() if k == "relative" and c["input_size"] == 252)
    proc = run_synthetic(
        "image", str(REFERENCE / case["image"]), "--model", HEADS["relative"], "--input-size",
        "252", "--backend", backend, "--raw", "r.npy", "--depth", "d.npy", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert off_by(np.load(tmp_path / "r.npy"), np.load(REFERENCE / case["raw_output"])) <= TOLERANCE
    want = np.load(REFERENCE / case["output_resized"])
    assert off_by(np.load(tmp_path / "d.npy"), want) <= TOLERANCE


# Reduced-precision paths against the official fp32 output: Pearson r, and the bar each
# keeps (the bench's 0.99 for a default; whole-network int8 stays opt-in below it).
FAST_PATHS = {
    "torch:bf16": 0.99,
    "torch:bf16-decoder": 0.99,
    "onnxruntime:int8": 0.95,
    "onnxruntime:int8-decoder": 0.99,
    "openvino:bf16": 0.99,
    "openvino:bf16-decoder": 0.99,
    "openvino:int8": 0.95,
    "openvino:int8-decoder": 0.99,
}


@pytest.mark.parametrize("path", list(FAST_PATHS))
def test_each_fast_path_runs_close_to_the_official_output(path: str) -> None:
    """bf16 and int8 run Depth Anything V2 as they run MiDaS (on a CPU without bf16 its
    paths refuse in one line); OpenVINO's bf16 gives numbers, not NaN, off the trained
    grid (its positional-embedding resize is folded in f32)."""
    require(REFERENCE.is_dir(), f"{REFERENCE} is missing")
    backend, precision = path.split(":")
    case = next(c for k, c in cases() if k == "relative" and c["input_size"] == 252)
    cfg = ModelConfig(name=HEADS["relative"], input_size=252, backend=backend, precision=precision)
    if uses_bf16(precision) and not bf16_supported(backend):
        with pytest.raises(UserError, match="bf16"):
            open_estimator(cfg, "synthetic", still=True)
        return
    depth = open_estimator(cfg, "synthetic", still=True)(read_image(REFERENCE / case["image"]))
    want = np.load(REFERENCE / case["raw_output"])
    assert np.isfinite(depth.output).all()
    assert np.corrcoef(depth.output.ravel(), want.ravel())[0, 1] >= FAST_PATHS[path]


@pytest.mark.parametrize("kind", list(HEADS))
def test_the_image_command_means_what_the_official_code_means(tmp_path: Path, kind) -> None:
    """``image --input-size N --raw --depth`` = the official ``infer_image(image, N)``."""
    require(REFERENCE.is_dir(), f"{REFERENCE} is missing")
    case = next(c for k, c in cases() if k == kind and c["input_size"] == 518)
    proc = run_synthetic(
        "image", str(REFERENCE / case["image"]), "--model", HEADS[kind], "--input-size", "518",
        "--raw", "r.npy", "--depth", "d.npy", "--out", "h.png", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert off_by(np.load(tmp_path / "r.npy"), np.load(REFERENCE / case["raw_output"])) <= TOLERANCE
    want = np.load(REFERENCE / case["output_resized"])
    assert off_by(np.load(tmp_path / "d.npy"), want) <= TOLERANCE


def test_weights_of_the_other_family_are_refused_by_name(tmp_path: Path) -> None:
    """A MiDaS state dict given to Depth Anything V2, and the reverse: one line naming the
    model and the first wrong keys."""
    from depthstream.stream.model.locate import WeightsChoice
    from depthstream.stream.model.weights import load_model

    require(REFERENCE.is_dir(), f"{REFERENCE} is missing")
    for name, file in (("midas-small", "midas.pt"), ("depth-anything-v2-small", "vit.pth")):
        model = load_model(WeightsChoice(None, "t"), MODELS[name]).model
        torch.save(model.state_dict(), tmp_path / file)
    image = str(REFERENCE / "images" / "chelsea.png")
    proc = run_cli("image", image, "--model", "depth-anything-v2-small", "--weights", "midas.pt",
                   cwd=tmp_path)  # fmt: skip
    line = assert_clean_error(proc)
    assert "midas.pt is not Depth Anything V2 Small weights" in line and "pretrained." in line
    proc = run_cli("image", image, "--weights", "vit.pth", cwd=tmp_path)
    line = assert_clean_error(proc)
    assert "vit.pth is not MiDaS v2.1 small weights" in line and "pretrained.cls_token" in line


def test_a_metric_head_speaks_metres_without_calibration(tmp_path: Path) -> None:
    """The indoor head's depth image in MCAP is metres (the synthetic head's sigmoid x 20 m),
    on the metric topic, with no calibration given."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    proc = run_synthetic(
        "run", "sample", "--model", "depth-anything-v2-small-indoor", "--display", "none",
        "--frames", "3", "--record-mcap", "m.mcap", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "m.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        messages = [(c.topic, m) for _, c, _, m in reader.iter_decoded_messages()]
        (described,) = [m.metadata for m in reader.iter_metadata() if m.name == "depthstream"]
    assert described["model"] == "depth-anything-v2-small-indoor"
    topics = {topic for topic, _ in messages}
    assert "/camera/depth/image" in topics and "/camera/inverse_depth/image" not in topics
    depth = next(m for topic, m in messages if topic == "/camera/depth/image")
    metres = np.frombuffer(depth.data, np.float32)
    assert metres.min() > 0 and metres.max() < 20.0


def test_calibrating_a_metric_head_corrects_its_metres_by_one_factor(tmp_path: Path) -> None:
    """One point on the outdoor head: ``calibrate`` says how far off the model was, saves
    scale 1/factor with shift 0, and the next run's metres are the model's times it."""
    case = next(c for k, c in cases() if k == "metric_vkitti")
    image = REFERENCE / case["image"]
    model = ModelConfig(name=HEADS["metric_vkitti"])
    own = open_estimator(model, "synthetic", still=True)(read_image(image)).resized
    x, y = own.shape[1] // 2, own.shape[0] // 2
    said = 1.0 / float(np.median(own[y - 2 : y + 3, x - 2 : x + 3]))  # the model's metres
    (tmp_path / "c.toml").write_text("[model]\nthreads = 0\n")
    proc = run_synthetic(
        "calibrate", str(image), "--model", HEADS["metric_vkitti"], "--config", "c.toml",
        "--point", f"{x},{y},{1.5 * said:.6f}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "the model's distances times 1.500 (50% short)" in proc.stdout
    saved = load_config(tmp_path / "c.toml").calibration
    assert saved.scale == pytest.approx(1 / 1.5, rel=1e-5) and saved.shift == 0.0


def test_two_cameras_on_two_models_share_nothing_but_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One runtime per model: MiDaS at its 32-multiples, Depth Anything at 14-multiples."""
    (tmp_path / "c.toml").write_text(
        '[[cameras]]\nname = "midas"\nsource = "sample"\n'
        '[[cameras]]\nname = "vit"\nsource = "sample"\nmodel = "depth-anything-v2-small"\n'
    )
    cfg = load_config(tmp_path / "c.toml")
    opened: list[str] = []
    real_open = assembly.open_estimator
    monkeypatch.setattr(
        assembly,
        "open_estimator",
        lambda model, *a, **k: opened.append(model.name) or real_open(model, *a, **k),
    )
    pipelines = open_cameras(cfg, cfg.cameras, weights="synthetic", obstacles=True)
    try:
        assert sorted(opened) == ["depth-anything-v2-small", "midas-small"]
        latest = {}
        for name, pipeline in pipelines.items():
            latest[name] = LatestResult()
            pipeline.add_sink(latest[name])
            pipeline.start()
        got = {name: sink.get(timeout=120) for name, sink in latest.items()}
        assert got["midas"].depth.raw.shape == (96, 256)  # the 640x272 sample
        assert got["vit"].depth.raw.shape == (252, 588)
    finally:
        for pipeline in pipelines.values():
            pipeline.join()
