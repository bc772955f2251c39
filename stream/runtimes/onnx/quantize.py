"""Static int8 quantization of the ONNX model, calibrated on real video frames.

Activation ranges come from frames of the bundled sample clip (a real street
scene) resized to the input shape.  The result is a QDQ model: ONNX Runtime
and OpenVINO both run it with int8 kernels (VNNI where the CPU has it).
Weights are quantized per output channel, activations per tensor (uint8).
Each activation's range is the mean of the calibration frames' own ranges,
not the widest of them: the widest frame would set coarse int8 steps for
every other frame.

``int8`` quantizes every convolution.  ``int8-decoder`` quantizes only the
convolutions inside the decoder (its residual units' 3x3s and the head's two
3x3s, most of its arithmetic) and keeps in float what int8 cannot hold: the
encoder, the decoder's four entry convolutions (the encoder's feature maps
have channels whose ranges one per-tensor scale cannot hold), each fusion
block's 1x1 ``out_conv`` (it hands its level to the next) and the head's last
1x1.  docs/runtimes.md says how that split was found.  Both quantize the
rewritten graph (:func:`stream.runtimes.onnx.export.fp32_model`), whose 1x1
``out_conv`` runs before its upsampling; node names are the same.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthstream.capture.decode import spread_frames
from depthstream.capture.sample import SAMPLE_PATH
from depthstream.stream.errors import UserError
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.registry import MODELS, ModelSpec
from depthstream.stream.runtimes.cache_file import write_atomically
from depthstream.stream.runtimes.onnx.export import INPUT_NAME, fp32_model, onnx_path
from depthstream.stream.transform import PREPROCESSING, Preprocessing, to_net_input

log = logging.getLogger("depthstream")
CALIBRATION_FRAMES = 32


def calibration_inputs(
    shape: tuple[int, int], prep: Preprocessing, count: int = CALIBRATION_FRAMES
) -> list[np.ndarray]:
    """``count`` frames spread over the sample clip, as network inputs of ``shape`` made
    with the model's preprocessing ``prep``."""
    height, width = shape
    target = min(shape) if prep.lower_bound else max(shape)  # the size that keeps ``shape``
    return [
        to_net_input(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), target, prep)
        for rgb in spread_frames(SAMPLE_PATH, count)
    ]


def decoder_inner_convs(model: Any, scope: str) -> list[str]:
    """Names of the convolutions ``int8-decoder`` quantizes in the ONNX ``model``: those of
    the fusion blocks and the output head but their 1x1 ``out_conv`` and the last one.

    The exporter names nodes after the module path under ``scope`` (the registry's
    ``decoder_scope``), fixed by the official checkpoint's keys (``refinenetN``,
    ``output_conv``; Depth Anything's ``output_conv1``/``output_conv2``).
    """
    convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
    names = [
        name
        for name in convs[:-1]
        if name.startswith((f"{scope}/refinenet", f"{scope}/output_conv"))
        and "/out_conv/" not in name
    ]
    if not names:
        raise RuntimeError("cannot find the decoder's convolutions in the exported model")
    return names


@contextmanager
def _without_quantizer_warnings() -> Iterator[None]:
    """The quantizer warns on the root logger about each normalization weight it cannot
    quantize per channel (a ViT has dozens); it quantizes those per tensor, as it should.
    Only its own records are dropped: other threads' root-logger warnings still pass."""
    import onnxruntime.quantization

    package = str(Path(onnxruntime.quantization.__file__).parent)

    def others(record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING or not record.pathname.startswith(package)

    root = logging.getLogger()
    root.addFilter(others)
    try:
        yield
    finally:
        root.removeFilter(others)


def quantize(
    fp32: Path, shape: tuple[int, int], out: Path, precision: str, spec: ModelSpec
) -> None:
    """Calibrate min/max activation ranges on real frames and write the QDQ model
    (``precision``: ``int8`` or ``int8-decoder``) of the model ``spec``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            prep = PREPROCESSING[spec.preprocessing]
            self._inputs: Iterator[np.ndarray] = iter(calibration_inputs(shape, prep))

        def get_next(self) -> dict[str, np.ndarray] | None:
            net_input = next(self._inputs, None)
            return None if net_input is None else {INPUT_NAME: net_input[None]}

    with tempfile.TemporaryDirectory(prefix="depthstream-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        nodes = None
        if precision == "int8-decoder":
            nodes = decoder_inner_convs(
                onnx.load(str(prepared), load_external_data=False), spec.decoder_scope
            )
        with _without_quantizer_warnings():
            quantize_static(
                str(prepared),
                str(out),
                Frames(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_quantize=nodes,
                extra_options={"CalibMovingAverage": True},
            )


def int8_model(
    handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path, precision: str
) -> Path:
    """The cached ``int8`` or ``int8-decoder`` ONNX file for ``shape``, quantized on first use."""
    path = onnx_path(cache_dir, handle.key, shape, precision, handle.model)
    if not path.is_file():
        fp32 = fp32_model(handle, shape, cache_dir, rewritten=True)
        log.info("quantizing the model (%s) for %dx%d input (cached afterwards)", precision, *shape)
        spec = MODELS[handle.model]
        if not write_atomically(path, lambda tmp: quantize(fp32, shape, tmp, precision, spec)):
            raise UserError(
                f"cannot write the int8 model under {path.parent}; set [model] cache_dir"
            )
    return path


def model_file(
    handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path, precision: str
) -> Path:
    """The ONNX file a runtime loads: quantized for the int8 precisions, else fp32 (which
    it may run in bf16), rewritten for the precisions this project builds."""
    if precision.startswith("int8"):
        return int8_model(handle, shape, cache_dir, precision)
    return fp32_model(handle, shape, cache_dir, rewritten=precision == "bf16-decoder")
