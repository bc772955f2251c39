"""Every backend/precision runs the same network and matches fp32 within its stated tolerance."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from depthstream.stream.bench.tolerances import FP32, TOLERANCES
from depthstream.stream.config import BACKENDS, ModelConfig, config_from_dict
from depthstream.stream.errors import UserError
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.runtimes.base import import_for, uses_bf16
from depthstream.stream.runtimes.onnx.export import INPUT_NAME, fp32_model, onnx_path
from depthstream.stream.runtimes.registry import OPENERS, bf16_supported, open_runtime
from depthstream.stream.runtimes.torchscript.thread_bound import ThreadBoundRuntime
from tests.conftest import DATA, assert_clean_error, require, run_synthetic

PATHS = [(b, p) for b, offered in BACKENDS.items() for p in offered.precisions]
CASES = [DATA / "cases" / name for name in ("camera", "chelsea")]


def test_every_backend_of_the_settings_table_has_an_opener() -> None:
    """The settings' table of backends and precisions is the registry's too: nothing is
    offered that cannot open, nothing opens that the settings refuse."""
    assert list(OPENERS) == list(BACKENDS)
    with pytest.raises(ValueError, match="offers no int8"):
        open_runtime("torch", "int8", None, Path("."))  # type: ignore[arg-type]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def handle(synthetic_model) -> WeightsHandle:
    return WeightsHandle.of_loaded(synthetic_model)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for all paths: each ONNX file is exported (and quantized) once."""
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.mark.parametrize(("backend", "precision"), PATHS, ids=lambda v: v)
def test_each_path_matches_fp32_within_its_tolerance(
    backend: str, precision: str, handle: WeightsHandle, shared_cache: Path
) -> None:
    if uses_bf16(precision) and not bf16_supported(backend):
        # A CPU without bf16 (not this one) must refuse it in one line, not run it slowly.
        with pytest.raises(UserError, match="no bf16 support"):
            open_runtime(backend, precision, handle, shared_cache, threads=2)
        return
    runtime = open_runtime(backend, precision, handle, shared_cache, threads=2)
    tolerance = TOLERANCES[precision]
    for case in CASES:
        net_input, want = np.load(case / "net_input.npy"), np.load(case / "raw_output.npy")
        got = runtime.infer(net_input)
        assert got.shape == want.shape and got.dtype == np.float32
        if tolerance.max_rel_err is not None:
            assert np.abs(got - want).max() / np.ptp(want) <= tolerance.max_rel_err
        if tolerance.min_pearson is not None:
            r = pearson(got, want)
            # A floor, and proof it is not fp32 in disguise.
            assert tolerance.min_pearson <= r < 0.9999, (case.name, r)


def test_onnx_and_int8_files_are_cached_per_weights_and_shape(
    handle: WeightsHandle, tmp_path: Path
) -> None:
    runtime = open_runtime("onnxruntime", "int8", handle, tmp_path, threads=2)
    runtime.prepare((64, 96))
    names = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert len(names) == 2 and all("64x96-g" in n for n in names)
    assert {n.split("-g", 1)[1].split("-", 1)[1] for n in names} == {
        "fp32-rewritten.onnx",
        "int8.onnx",
    }
    stamps = [p.stat().st_mtime_ns for p in sorted((tmp_path / "onnx").iterdir())]
    open_runtime("onnxruntime", "int8", handle, tmp_path, threads=2).prepare((64, 96))
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "onnx").iterdir())] == stamps


def test_int8_decoder_quantizes_only_the_decoders_inner_convolutions(
    handle: WeightsHandle, shared_cache: Path
) -> None:
    """The encoder, the decoder's four entry convolutions, its 1x1 out_convs and the
    head's last 1x1 stay float; the convolutions of the seven residual units and the
    head's two 3x3s are int8 (their weights come through a DequantizeLinear)."""
    import onnx

    open_runtime("onnxruntime", "int8-decoder", handle, shared_cache, threads=2).prepare((64, 96))
    model = onnx.load(str(onnx_path(shared_cache, handle.key, (64, 96), "int8-decoder")))
    made_by = {out: node.op_type for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    quantized = {c.name for c in convs if made_by.get(c.input[1]) == "DequantizeLinear"}
    units = [(4, 2)] + [(n, u) for n in (1, 2, 3) for u in (1, 2)]
    inner = [f"/refinenet{n}/resConfUnit{u}/conv{i}/Conv" for n, u in units for i in (1, 2)]
    assert quantized == {
        *inner,
        "/output_conv/output_conv.0/Conv",
        "/output_conv/output_conv.2/Conv",
    }
    assert len(convs) == 97  # all of the network's convolutions, the other 81 in float


def test_int8_activation_ranges_are_the_mean_of_each_frames_range(
    handle: WeightsHandle, shared_cache: Path
) -> None:
    """Calibration averages the frames' ranges rather than taking the widest, so one
    unusual frame does not coarsen every frame's int8 steps.  Checked on the first
    quantized activation, whose inputs are all float (so the QDQ model computes it
    exactly as fp32 does): a ReLU output, so its range starts at 0 and its scale is
    the mean of the frames' maxima over 255."""
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    from depthstream.stream.runtimes.onnx.quantize import calibration_inputs
    from depthstream.stream.transform import MIDAS

    open_runtime("onnxruntime", "int8-decoder", handle, shared_cache, threads=2).prepare((64, 96))
    model = onnx.load(str(onnx_path(shared_cache, handle.key, (64, 96), "int8-decoder")))
    made_by = {out: node for node in model.graph.node for out in node.output}
    conv = next(n for n in model.graph.node if n.name == "/refinenet4/resConfUnit2/conv1/Conv")
    quant = made_by[made_by[conv.input[0]].input[0]]
    assert quant.op_type == "QuantizeLinear" and made_by[quant.input[0]].op_type == "Relu"
    scale = next(
        numpy_helper.to_array(i) for i in model.graph.initializer if i.name == quant.input[1]
    )
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(quant.input[0], onnx.TensorProto.FLOAT, None)
    )
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    peaks = [
        float(session.run([quant.input[0]], {INPUT_NAME: x[None]})[0].max())
        for x in calibration_inputs((64, 96), MIDAS)
    ]
    assert float(scale) * 255 == pytest.approx(np.mean(peaks), rel=1e-4)
    assert max(peaks) > 1.05 * np.mean(peaks)  # the widest frame's range would differ


def test_the_rewritten_onnx_graph_computes_the_same_depth(
    handle: WeightsHandle, shared_cache: Path
) -> None:
    """bf16-decoder and the int8 precisions start from the graph whose fusion blocks
    convolve before upsampling: in fp32 it matches the reference cases as closely
    as the official graph must."""
    import onnx
    import onnxruntime

    for case in CASES:
        net_input, want = np.load(case / "net_input.npy"), np.load(case / "raw_output.npy")
        path = fp32_model(handle, net_input.shape[1:], shared_cache, rewritten=True)
        model = onnx.load(str(path))
        made_by = {out: node.name for node in model.graph.node for out in node.output}
        for n in range(1, 5):
            resize = next(node for node in model.graph.node if node.name == f"/refinenet{n}/Resize")
            assert made_by[resize.input[0]] == f"/refinenet{n}/out_conv/Conv"
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: net_input[None]})[0][0]
        assert np.abs(got - want).max() / np.ptp(want) <= FP32.max_rel_err


def test_warm_onnx_paths_never_import_torch(tmp_path: Path) -> None:
    """With the ONNX file cached, OpenVINO and ONNX Runtime runs leave torch unloaded
    (the CUDA build of torch alone is about 600 MB of resident memory)."""
    image = DATA / "cases" / "chelsea" / "chelsea.png"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    for backend in ("openvino", "onnxruntime"):
        (tmp_path / f"{backend}.toml").write_text(f'[model]\nbackend = "{backend}"\n')
        out = tmp_path / f"{backend}.png"
        warm = run_synthetic("image", str(image), "--out", str(out), "--backend", backend, env=env)
        assert warm.returncode == 0, warm.stderr
    script = textwrap.dedent(
        f"""
        import sys
        from depthstream.capture.image import read_image
        from depthstream.stream.config import load_config
        from depthstream.stream.estimator import open_estimator
        for backend in ("openvino", "onnxruntime"):
            cfg = load_config("{tmp_path}/" + backend + ".toml")
            estimator = open_estimator(cfg.model, "synthetic")
            assert estimator(read_image("{image}")).resized.shape == (300, 451)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm")))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_warm_trace_cache_never_builds_the_network(tmp_path: Path) -> None:
    """With the trace cached, the torch path loads it without timm or the eager weights
    (about 300 MB of resident memory and seconds of start-up)."""
    image = DATA / "cases" / "chelsea" / "chelsea.png"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    cold = run_synthetic("image", str(image), "--out", str(tmp_path / "cold.png"), env=env)
    assert cold.returncode == 0, cold.stderr
    script = textwrap.dedent(
        f"""
        import sys
        from depthstream.capture.image import read_image
        from depthstream.stream.config import Config
        from depthstream.stream.estimator import open_estimator
        estimator = open_estimator(Config().model, "synthetic")
        assert estimator(read_image("{image}")).resized.shape == (300, 451)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "timm" or "midas" in m))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"backend": "tensorrt"}, "model.backend 'tensorrt'"),
        ({"backend": "onnxruntime", "precision": "bf16"}, "not available on onnxruntime"),
        ({"precision": "int8"}, "not available on torch"),
        ({"input_size": 200}, "multiple of 32"),
        ({"input_size": 32}, "64..1024"),
        ({"name": "depth-anything-v2-small", "input_size": 256}, "multiple of 14"),
        (
            {"name": "depth-anything-v2-small", "backend": "onnxruntime", "precision": "bf16"},
            "not available on onnxruntime",
        ),
        ({"name": "midas-large"}, "model.name 'midas-large'"),
    ],
)
def test_bad_runtime_settings_are_refused(model: dict, words: str) -> None:
    with pytest.raises(UserError, match=words):
        config_from_dict({"model": model})


def test_a_missing_runtime_package_is_one_line_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(UserError, match=r"needs the openvino package: pip install 'depth"):
        import_for("openvino")


def test_smaller_input_size_runs_from_the_command_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npy"
    image = DATA / "cases" / "chelsea" / "chelsea.png"
    proc = run_synthetic(
        "image", str(image), "--raw", str(raw), "--out-dir", str(tmp_path), "--input-size", "128"
    )
    assert proc.returncode == 0, proc.stderr
    assert np.load(raw).shape == (96, 128)
    assert ModelConfig().size() == 256


def test_a_precision_the_backend_lacks_is_a_clean_error(tmp_path: Path) -> None:
    image = DATA / "cases" / "chelsea" / "chelsea.png"
    proc = run_synthetic("image", str(image), "--out-dir", str(tmp_path), "--precision", "int8")
    assert "not available on torch" in assert_clean_error(proc)


def test_one_thread_opens_prepares_and_runs_the_torch_model(
    handle: WeightsHandle, shared_cache: Path
) -> None:
    """Whichever thread calls, the real torch runtime sees only one: the one it was
    opened on (libgomp keeps a worker team per calling thread)."""
    from depthstream.stream.runtimes.torchscript.runtime import TorchScriptRuntime

    assert isinstance(open_runtime("torch", "fp32", handle, shared_cache), ThreadBoundRuntime)
    seen: list[int] = []

    def recorded(call):
        def run(*args):
            seen.append(threading.get_ident())
            return call(*args)

        return run

    def open_recorded():
        seen.append(threading.get_ident())
        runtime = TorchScriptRuntime(handle, shared_cache, "fp32", 2)
        runtime.prepare = recorded(runtime.prepare)
        runtime.infer = recorded(runtime.infer)
        return runtime

    bound = ThreadBoundRuntime(open_recorded)
    bound.prepare((64, 64))
    outputs: list[np.ndarray] = []
    net_input = np.zeros((3, 64, 64), np.float32)
    callers = [
        threading.Thread(target=lambda: outputs.append(bound.infer(net_input))) for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    outputs.append(bound.infer(net_input))
    for caller in callers:
        caller.join()
    assert [o.shape for o in outputs] == [(64, 64)] * 3
    # open, prepare, three infers (each of which also prepares)
    assert len(seen) == 8 and len(set(seen)) == 1
    assert seen[0] not in {threading.get_ident(), *(c.ident for c in callers)}


def test_a_runtime_that_cannot_open_fails_on_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match="needs the onnxruntime package"):
        ThreadBoundRuntime(lambda: import_for("onnxruntime"))


def test_openvino_keeps_each_precisions_compiled_model_apart(tmp_path: Path) -> None:
    """OpenVINO's key for a cached compiled model leaves the precision hint out: a bf16
    start after an fp32 one on the same cache must compute what a bf16 start on an empty
    cache does (it loaded the fp32 start's blob: other numbers, and with torch loaded, a
    crash; seen with Depth Anything V2's folded graph).  Without bf16 in the CPU, the bf16
    start is refused in one line instead."""
    image = str(DATA / "cases" / "chelsea" / "chelsea.png")

    def depth(cache: str, precision: str) -> np.ndarray:
        proc = run_synthetic(
            "image", image, "--model", "depth-anything-v2-small", "--input-size", "196",
            "--backend", "openvino", "--precision", precision, "--raw", f"{cache}-{precision}.npy",
            cwd=tmp_path,
            env={"XDG_CACHE_HOME": str(tmp_path / cache)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return np.load(tmp_path / f"{cache}-{precision}.npy")

    stale = tmp_path / "shared" / "depthstream" / "openvino" / "0123.blob"  # an old version's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    fp32 = depth("shared", "fp32")
    assert not stale.exists() and list(stale.parent.glob("fp32/*.blob"))
    if not bf16_supported("openvino"):
        proc = run_synthetic("image", image, "--backend", "openvino", "--precision", "bf16")
        assert "bf16" in assert_clean_error(proc)
        return
    after_fp32 = depth("shared", "bf16")
    alone = depth("own", "bf16")
    np.testing.assert_array_equal(after_fp32, alone)
    assert not np.array_equal(alone, fp32)


def test_quantizing_drops_only_the_quantizers_own_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """During an int8 build the quantizer's root-logger warnings are dropped; a warning
    from anywhere else (another thread of a running ``serve``) still reaches the log."""
    require(importlib.util.find_spec("onnxruntime") is not None, "onnxruntime is missing")
    import logging

    import onnxruntime.quantization.base_quantizer as quantizer

    from depthstream.stream.runtimes.onnx.quantize import _without_quantizer_warnings

    code = compile("import logging\nlogging.warning('per tensor')", quantizer.__file__, "exec")
    with caplog.at_level(logging.WARNING), _without_quantizer_warnings():
        exec(code, {})  # logged as if from the quantizer's own file
        logging.warning("elsewhere")
    exec(code, {})
    assert [r.getMessage() for r in caplog.records] == ["elsewhere", "per tensor"]
