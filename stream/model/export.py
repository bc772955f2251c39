"""ONNX export of the network for ONNX Runtime and OpenVINO, cached like the traces.

One file per weights and input shape: a fixed shape lets both runtimes plan
their kernels and memory once.  torch is imported only when a file has to be
built, so a warm cache starts those runtimes without it.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import version
from pathlib import Path

from stream.errors import UserError
from stream.model.cache_file import write_atomically
from stream.model.handle import WeightsHandle

log = logging.getLogger("depthstream")
OPSET = 17
INPUT_NAME = "image"


def onnx_path(cache_dir: Path, key: str, shape: tuple[int, int], precision: str) -> Path:
    """Named for everything the file depends on: weights, exporter version, shape, precision."""
    torch_version = version("torch").replace("+", "_")
    name = f"midas_small-{key[:24]}-torch{torch_version}-{shape[0]}x{shape[1]}-{precision}.onnx"
    return cache_dir / "onnx" / name


def export(handle: WeightsHandle, shape: tuple[int, int], path: Path) -> None:
    """Write the fp32 network at ``(H, W)`` to ``path`` (TorchScript-based exporter)."""
    import torch

    model = handle.load().model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, *shape),),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=["depth"],
        )


def fp32_model(handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path) -> Path:
    """The cached fp32 ONNX file for ``shape``, exported on first use."""
    path = onnx_path(cache_dir, handle.key, shape, "fp32")
    if not path.is_file():
        log.info("exporting the model to ONNX for %dx%d input (cached afterwards)", *shape)
        if not write_atomically(path, lambda tmp: export(handle, shape, tmp)):
            raise UserError(
                f"cannot write the ONNX model under {path.parent}; set [model] cache_dir"
            )
    return path
