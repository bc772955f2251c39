"""Rewrites of the network that compute the same function with less work, applied before a
runtime's model is built (the TorchScript trace, the ONNX export).

Both are exact in real arithmetic; only float32 rounding order changes
(within the fp32 tolerance, tested).

- **Symmetric padding.** EfficientNet's stride-2 layers use TensorFlow's
  "same" padding, which on an even input pads one pixel less before than
  after.  timm does it with a separate pad op, a full copy of the input that
  oneDNN fusion cannot absorb.  The same result comes from a convolution
  one pixel larger whose first row and column are zero, with ordinary
  symmetric padding, which the convolution kernel does itself.
- **Convolve before upsampling.** Each fusion block ends with bilinear x2
  upsampling and then a 1x1 convolution.  Both are linear and bilinear
  weights sum to one (bias included), so the 1x1 convolution can run first,
  at a quarter of the pixels, and the upsampling then moves fewer channels.
"""

from __future__ import annotations

import copy

import torch
from timm.layers import Conv2dSame
from torch import nn
from torch.nn import functional as F

from depthstream.stream.model.midas_small import FeatureFusionBlock


def _symmetric(conv: nn.Conv2d) -> nn.Conv2d:
    """A stride-2 "same" convolution as a one-pixel-larger kernel with symmetric padding.

    On an even input, TF "same" pads ``(k - 2) // 2`` before and ``k // 2`` after.
    A ``k + 1`` kernel padded by ``k // 2`` on both sides, whose first row and
    column are zero, reads the same pixels with the same weights.
    """
    k = conv.kernel_size[0]
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        k + 1,
        stride=2,
        padding=k // 2,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        out.weight.zero_()
        out.weight[:, :, 1:, 1:] = conv.weight
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def symmetric_padding(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every square, undilated stride-2 "same" convolution
    made symmetric (EfficientNet-Lite3 has five: 3x3 and 5x5).

    Valid when every stride-2 layer sees an even input, which MidasSmall's
    input sizes (multiples of 32) guarantee; an odd input is padded
    symmetrically by "same" already and would be shifted by this rewrite.
    """
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, conv in list(parent.named_children()):
            if (
                isinstance(conv, Conv2dSame)
                and conv.stride == (2, 2)
                and conv.dilation == (1, 1)
                and conv.kernel_size[0] == conv.kernel_size[1]
            ):
                setattr(parent, name, _symmetric(conv))
    return model


class ConvThenUpsample(nn.Module):
    """``block`` with its 1x1 ``out_conv`` applied before the x2 upsampling."""

    def __init__(self, block: FeatureFusionBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        block = self.block
        if skip is not None:
            path = path + block.resConfUnit1(skip)
        path = block.out_conv(block.resConfUnit2(path))
        return F.interpolate(path, scale_factor=2.0, mode="bilinear", align_corners=True)


def convolve_before_upsampling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose fusion blocks convolve first, then upsample."""
    model = copy.deepcopy(model)
    blocks = [
        (parent, name, block)
        for parent in model.modules()
        for name, block in parent.named_children()
        if isinstance(block, FeatureFusionBlock)
    ]
    for parent, name, block in blocks:
        setattr(parent, name, ConvThenUpsample(block))
    return model
