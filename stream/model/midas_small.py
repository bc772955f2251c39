"""MiDaS v2.1 small (``MidasNet_small``) as a plain ``nn.Module``.

The module does no I/O: weights are loaded, traced and cached by the sibling
modules.  Submodule names follow the official state dict
(``pretrained.layerN``, ``scratch.*``) so official checkpoints load strictly.
"""

from __future__ import annotations

import timm
import torch
from torch import nn
from torch.nn import functional as F

ENCODER_NAME = "tf_efficientnet_lite3"
ENCODER_CHANNELS = (32, 48, 136, 384)


class ResidualConvUnit(nn.Module):
    """Pre-activation residual block of the decoder (two 3x3 convs)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Out-of-place ReLU: ``x`` is needed unchanged for the skip connection.
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuses a coarser decoder path with an encoder skip, then upsamples x2."""

    def __init__(self, features: int, out_features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, out_features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        path = F.interpolate(path, scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling as a layer, so it can sit inside ``nn.Sequential``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _encoder() -> nn.Module:
    """EfficientNet-Lite3 split into four stages, arranged as MiDaS arranges it.

    Stage 1 is stem + blocks 0-1; index 2 of that stage is an empty activation
    slot in the official checkpoint (timm's ``bn1`` already applies ReLU6).
    """
    net = timm.create_model(ENCODER_NAME, pretrained=False, exportable=True)
    stages = nn.Module()
    stages.layer1 = nn.Sequential(net.conv_stem, net.bn1, nn.Identity(), *net.blocks[0:2])
    stages.layer2 = nn.Sequential(*net.blocks[2:3])
    stages.layer3 = nn.Sequential(*net.blocks[3:5])
    stages.layer4 = nn.Sequential(*net.blocks[5:9])
    return stages


class MidasSmall(nn.Module):
    """Monocular relative inverse depth (bigger = nearer) from an RGB image.

    Input: ``(N, 3, H, W)`` normalized with ImageNet mean/std, ``H`` and ``W``
    multiples of 32.  Output: ``(N, H, W)``, non-negative.
    """

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.pretrained = _encoder()
        widths = (features, features * 2, features * 4, features * 8)
        scratch = nn.Module()
        for i, (cin, cout) in enumerate(zip(ENCODER_CHANNELS, widths, strict=True), start=1):
            setattr(scratch, f"layer{i}_rn", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        scratch.refinenet4 = FeatureFusionBlock(widths[3], widths[2])
        scratch.refinenet3 = FeatureFusionBlock(widths[2], widths[1])
        scratch.refinenet2 = FeatureFusionBlock(widths[1], widths[0])
        scratch.refinenet1 = FeatureFusionBlock(widths[0], widths[0])
        scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, padding=1),
            Upsample2x(),
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )
        self.scratch = scratch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc, dec = self.pretrained, self.scratch
        l1 = enc.layer1(x)
        l2 = enc.layer2(l1)
        l3 = enc.layer3(l2)
        l4 = enc.layer4(l3)
        path = dec.refinenet4(dec.layer4_rn(l4))
        path = dec.refinenet3(path, dec.layer3_rn(l3))
        path = dec.refinenet2(path, dec.layer2_rn(l2))
        path = dec.refinenet1(path, dec.layer1_rn(l1))
        return dec.output_conv(path).squeeze(1)
