"""The models depthstream runs, one entry each, as timm keeps its registry: what builds the
network, how an image becomes its input, what its output means, its default input sizes
and where its official weights come from.  Settings, flags, the weights lookup, the
runtimes, the bench and the docs read this table; a new model is one entry here plus its
network module.  Plain data: importing it loads neither torch nor any network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INVERSE_DEPTH = "inverse depth"  # relative, bigger = nearer
METRES = "metres"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One model.  ``network``: ``module:class`` of its ``nn.Module``, built with
    ``network_args``.  ``preprocessing``: ``midas`` (longer side to the input size,
    multiples of 32, bicubic back) or ``depth-anything`` (shorter side at least the input
    size, multiples of 14, bilinear back, as the official ``infer_image``).  ``output``:
    :data:`INVERSE_DEPTH` or :data:`METRES`.  ``still_size``/``live_size``: the default
    input size for single images and for video.  ``synthetic``: the parity recipe of its
    untrained test weights.  ``decoder``: the module whose children are the decoder's
    layers (what the ``-decoder`` precisions run in bf16 or int8), and ``decoder_scope``
    the prefix the ONNX exporter gives their nodes.  ``fusion``: whether the traced graph
    runs with torch's oneDNN graph fusion (which fails on the ViT's graph).
    ``bench_sizes``: the square input sizes ``depthstream bench`` times it at;
    ``standin``: whether the bench's stand-in (its synthetic weights with batch norm
    re-estimated on real frames) exists for it.
    ``unfused_attention``: the official code computes attention as separate matrix
    products (DINOv2 without xFormers); the bench times that eager computation too."""

    name: str
    title: str
    network: str
    network_args: dict[str, float] = field(default_factory=dict)
    preprocessing: str
    output: str
    still_size: int
    live_size: int
    weights_file: str
    weights_url: str
    weights_sha256: str
    licence: str
    synthetic: str
    decoder: str = "scratch"
    decoder_scope: str = ""
    fusion: bool = True
    bench_sizes: tuple[int, ...]
    standin: bool = False
    unfused_attention: bool = False

    @property
    def metric(self) -> bool:
        return self.output == METRES


def _depth_anything(
    suffix: str, title: str, repo: str, file: str, sha256: str, max_depth: float = 0.0
) -> ModelSpec:
    """One Depth Anything V2 Small head: the same network and preprocessing, its own
    weights on Hugging Face; ``max_depth`` > 0 for the metric heads (metres)."""
    return ModelSpec(
        name=f"depth-anything-v2-small{suffix}",
        title=f"Depth Anything V2 Small{title}",
        network="depthstream.stream.model.depth_anything_v2:DepthAnythingV2Small",
        network_args={"max_depth": max_depth} if max_depth else {},
        preprocessing="depth-anything",
        output=METRES if max_depth else INVERSE_DEPTH,
        still_size=518,
        live_size=252,
        weights_file=file,
        weights_url=f"https://huggingface.co/depth-anything/{repo}/resolve/main/{file}",
        weights_sha256=sha256,
        licence="Apache-2.0",
        synthetic="depth-anything",
        decoder="depth_head.scratch",
        decoder_scope="/depth_head",
        fusion=False,
        bench_sizes=(518, 252, 196),
        unfused_attention=True,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="midas-small",
            title="MiDaS v2.1 small",
            network="depthstream.stream.model.midas_small:MidasSmall",
            preprocessing="midas",
            output=INVERSE_DEPTH,
            still_size=256,
            live_size=256,
            weights_file="midas_v21_small_256.pt",
            weights_url="https://github.com/isl-org/MiDaS/releases/download/v2_1/"
            "midas_v21_small_256.pt",
            # Its first 8 hex digits are the "70d6b9c8" of torch hub's older name for the file.
            weights_sha256="70d6b9c891758c67f974a6097fb0c608c7ee67fb81ac3e5588847d5596d56fca",
            licence="MIT",
            synthetic="midas",
            bench_sizes=(256, 192, 128),
            standin=True,
        ),
        _depth_anything(
            "",
            "",
            "Depth-Anything-V2-Small",
            "depth_anything_v2_vits.pth",
            "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
        ),
        _depth_anything(
            "-indoor",
            ", metric, indoor (Hypersim, up to 20 m)",
            "Depth-Anything-V2-Metric-Hypersim-Small",
            "depth_anything_v2_metric_hypersim_vits.pth",
            "b782898d8a3e8be1f639de33837ed85e9b4b73e40f8f5e5cd99067588d722545",
            max_depth=20.0,
        ),
        _depth_anything(
            "-outdoor",
            ", metric, outdoor (Virtual KITTI, up to 80 m)",
            "Depth-Anything-V2-Metric-VKITTI-Small",
            "depth_anything_v2_metric_vkitti_vits.pth",
            "9203e538d35255c90dda4b7fedb47ff33fe725497bcca3b1e53b3a65ee63f0cb",
            max_depth=80.0,
        ),
    )
}
DEFAULT_MODEL = "midas-small"
