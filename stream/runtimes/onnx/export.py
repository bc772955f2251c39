"""ONNX export of the network for ONNX Runtime and OpenVINO, cached like the traces.

One file per weights and input shape: a fixed shape lets both runtimes plan
their kernels and memory once.  torch is imported only when a file has to be
built, so a warm cache starts those runtimes without it.

Two graphs are exported.  ``fp32`` is the official network as it is, what a
user of those runtimes would run and the benchmark's baseline; the runtimes'
own modes (fp32, and OpenVINO's bf16) run it.  ``fp32-rewritten`` has each
fusion block's 1x1 convolution moved before its upsampling
(:func:`stream.runtimes.rewrites.convolve_before_upsampling`, exact in real
arithmetic), which OpenVINO runs faster; the precisions this project builds
(``bf16-decoder`` and the int8 ones) start from it.  The torch trace's other
rewrite, symmetric padding, is left out: OpenVINO already folds the pad into
the convolution.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import version
from pathlib import Path

from depthstream.stream.errors import UserError
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.registry import DEFAULT_MODEL
from depthstream.stream.runtimes.cache_file import write_atomically

log = logging.getLogger("depthstream")
OPSET = 17
INPUT_NAME = "image"
# In every file name; raised whenever a file's graph changes, so files written by
# an older version are built again, not reused.
GRAPH_VERSION = 3


def onnx_path(
    cache_dir: Path, key: str, shape: tuple[int, int], kind: str, model: str = DEFAULT_MODEL
) -> Path:
    """Named for everything the file depends on: weights, exporter version, shape, graph
    version and kind (``fp32``, ``fp32-rewritten`` or an int8 precision)."""
    torch_version = version("torch").replace("+", "_")
    size = f"{shape[0]}x{shape[1]}"
    name = f"{model}-{key[:24]}-torch{torch_version}-{size}-g{GRAPH_VERSION}-{kind}.onnx"
    return cache_dir / "onnx" / name


def export(handle: WeightsHandle, shape: tuple[int, int], path: Path, rewritten: bool) -> None:
    """Write the fp32 network at ``(H, W)`` to ``path`` (TorchScript-based exporter)."""
    import torch

    model = handle.load().model.eval()
    if rewritten:
        # Imported here: the rewrites need timm, which a warm start never loads.
        from depthstream.stream.runtimes.rewrites import convolve_before_upsampling

        model = convolve_before_upsampling(model)
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


def fp32_model(
    handle: WeightsHandle, shape: tuple[int, int], cache_dir: Path, rewritten: bool = False
) -> Path:
    """The cached fp32 ONNX file for ``shape`` (the official graph, or the rewritten one),
    exported on first use."""
    kind = "fp32-rewritten" if rewritten else "fp32"
    path = onnx_path(cache_dir, handle.key, shape, kind, handle.model)
    if not path.is_file():
        log.info("exporting the model to ONNX for %dx%d input (cached afterwards)", *shape)
        if not write_atomically(path, lambda tmp: export(handle, shape, tmp, rewritten)):
            raise UserError(
                f"cannot write the ONNX model under {path.parent}; set [model] cache_dir"
            )
    return path
