"""OpenVINO on the CPU, from the exported fp32 or int8 model.

OpenVINO silently runs fp32 models in bf16 on CPUs that have it; ``fp32``
here pins the inference precision to f32 so it stays exact, and ``bf16``
asks for bf16 explicitly.  ``bf16-decoder`` splits the model where the
decoder starts and compiles the encoder in f32 and the decoder in bf16 as
two models, because a bf16 hint does not leave marked nodes in f32.
``int8-decoder`` splits the same way: the encoder in f32, and the decoder's
int8 convolutions with the float layers around them in bf16 where the CPU
has it (f32 elsewhere), which is faster at almost no cost in fidelity.
Compiled blobs are cached by OpenVINO itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depthstream.stream.errors import UserError
from depthstream.stream.model.handle import WeightsHandle
from depthstream.stream.model.registry import MODELS
from depthstream.stream.runtimes.base import import_for, uses_bf16
from depthstream.stream.runtimes.onnx.file_runtime import OnnxFileRuntime

# The decoder's first layers, one 3x3 convolution per encoder stage; the ONNX
# exporter names ops after the module path (``layer1_rn`` and so on under the
# registry's ``decoder_scope``, fixed by the official checkpoint's keys).
DECODER_ENTRIES = tuple(f"/layer{i}_rn/" for i in range(1, 5))


def bf16_supported() -> bool:
    ov = import_for("openvino")
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def encoder_outputs(model: Any, scope: str) -> list[Any]:
    """The encoder's four feature maps: the inputs of the decoder's entry convolutions."""
    outputs = []
    for entry in DECODER_ENTRIES:
        prefix = scope + entry
        convs = [
            op
            for op in model.get_ops()
            if op.get_type_name() == "Convolution" and op.get_friendly_name().startswith(prefix)
        ]
        if len(convs) != 1:
            raise RuntimeError(f"cannot find the decoder entry {prefix!r} in the exported model")
        outputs.append(convs[0].input(0).get_source_output())
    return outputs


def read_folded(core: Any, path: Path) -> Any:
    """The model at ``path`` with its constant subgraphs computed once, in f32.

    Depth Anything's positional embedding is resized from the weights alone; left to
    the bf16 hint, that resize gives NaN on grids other than the trained one.
    """
    from openvino import passes

    model = core.read_model(str(path))
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)
    return model


def split_at_decoder(whole: Any, scope: str) -> tuple[Any, Any]:
    """The model ``whole`` as an encoder (image -> 4 features) and a decoder (4 features
    -> depth).  The encoder is taken from a clone: cutting the decoder off in place
    would leave a shared graph pointing at the new decoder inputs."""
    ov = import_for("openvino")
    copy = whole.clone()
    encoder = ov.Model(encoder_outputs(copy, scope), copy.get_parameters(), "encoder")
    inputs = []
    for i, feature in enumerate(encoder_outputs(whole, scope), start=1):
        param = ov.op.Parameter(feature.get_element_type(), feature.get_partial_shape())
        param.set_friendly_name(f"features{i}")
        for target in feature.get_target_inputs():
            target.replace_source_output(param.output(0))
        inputs.append(param)
    return encoder, ov.Model(whole.get_results(), inputs, "decoder")


class OpenVinoRuntime(OnnxFileRuntime):
    backend = "openvino"

    def __init__(
        self, handle: WeightsHandle, cache_dir: Path, precision: str, threads: int
    ) -> None:
        ov = import_for("openvino")
        if uses_bf16(precision) and not bf16_supported():
            raise UserError('this CPU has no bf16 support in OpenVINO; use precision = "fp32"')
        self._core = ov.Core()
        # One cache folder per precision: OpenVINO's key for a compiled model leaves the
        # precision hint out, and a blob compiled for another hint can crash on import.
        # Blobs from the shared folder of earlier versions are never read again.
        for stale in (cache_dir / "openvino").glob("*.blob"):
            stale.unlink(missing_ok=True)
        self._core.set_property({"CACHE_DIR": str(cache_dir / "openvino" / precision)})
        super().__init__(handle, cache_dir, precision, threads)

    def _compile(self, model: Any, hint: str) -> Any:
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        return self._core.compile_model(model, "CPU", config).create_infer_request()

    def load(self, path: Path) -> list[Any]:
        """A chain of infer requests, each fed the previous one's outputs."""
        model = read_folded(self._core, path)
        if self.precision.endswith("-decoder"):
            scope = MODELS[self.handle.model].decoder_scope
            encoder, decoder = split_at_decoder(model, scope)
            return [self._compile(encoder, "f32"), self._compile(decoder, self._decoder_hint())]
        return [self._compile(model, "bf16" if self.precision == "bf16" else "f32")]

    def _decoder_hint(self) -> str:
        """The decoder's float precision: bf16, except for int8-decoder on CPUs without it."""
        return "bf16" if self.precision == "bf16-decoder" or bf16_supported() else "f32"

    def run(self, loaded: list[Any], batch: np.ndarray) -> np.ndarray:
        inputs: dict[int, Any] = {0: batch}
        for request in loaded:
            request.infer(inputs)
            inputs = {i: request.get_output_tensor(i) for i in range(len(request.model_outputs))}
        # The request reuses its output buffer on the next call: copy out.
        return np.array(loaded[-1].get_output_tensor(0).data, copy=True)
