"""Static int8 quantization of the ONNX model, calibrated on real video frames.

Activation ranges come from frames of the bundled sample clip (a real street
scene) resized to the input shape.  The result is a QDQ model: ONNX Runtime
and OpenVINO both run it with int8 kernels (VNNI where the CPU has it).
Weights are quantized per output channel, activations per tensor (uint8).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from capture.decode import spread_frames
from capture.sample import SAMPLE_PATH
from stream.errors import UserError
from stream.model.cache_file import write_atomically
from stream.model.export import INPUT_NAME, fp32_model, onnx_path
from stream.model.handle import WeightsHandle
from stream.transform import to_net_input

log = logging.getLogger("depthstream")
CALIBRATION_FRAMES = 32


def calibration_inputs(shape: tuple[int, int], count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """``count`` frames spread over the sample clip, as network inputs of ``shape``."""
    height, width = shape
    return [
        to_net_input(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), max(shape))
        for rgb in spread_frames(SAMPLE_PATH, count)
    ]


def quantize(fp32: Path, shape: tuple[int, int], out: Path) -> None:
    """Calibrate min/max activation ranges on real frames and write the QDQ model."""
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
            self._inputs: Iterator[np.ndarray] = iter(calibration_inputs(shape))

        def get_next(self) -> dict[str, np.ndarray] | None:
            net_input = next(self._inputs, None)
            return None if net_input is None else {INPUT_NAME: net_input[None]}

    with tempfile.TemporaryDirectory(prefix="depthstream-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def int8_model(handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path) -> Path:
    """The cached int8 ONNX file for ``shape``, quantized on first use."""
    path = onnx_path(cache_dir, handle.key, shape, "int8")
    if not path.is_file():
        fp32 = fp32_model(handle, shape, cache_dir)
        log.info("quantizing the model to int8 for %dx%d input (cached afterwards)", *shape)
        if not write_atomically(path, lambda tmp: quantize(fp32, shape, tmp)):
            raise UserError(
                f"cannot write the int8 model under {path.parent}; set [model] cache_dir"
            )
    return path


def model_file(
    handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path, precision: str
) -> Path:
    """The ONNX file a runtime loads: int8 when asked for, else fp32 (which it may run in bf16)."""
    if precision == "int8":
        return int8_model(handle, shape, cache_dir)
    return fp32_model(handle, shape, cache_dir)
