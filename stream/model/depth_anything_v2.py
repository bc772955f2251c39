"""Depth Anything V2 Small as a plain ``nn.Module``: a DINOv2 ViT-S/14 encoder built from
timm's blocks and a DPT head.

Submodule names follow the official checkpoints (``pretrained.*``, ``depth_head.*``), so
they load strictly.  ``max_depth`` 0 is the relative model (inverse depth after a ReLU);
the metric fine-tunes end in a sigmoid scaled to ``max_depth`` metres.  The module does
no I/O: weights are loaded, traced and cached by the sibling modules.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn
from torch.nn import functional as F

from depthstream.stream.model.midas_small import ResidualConvUnit

PATCH = 14
EMBED_DIM = 384
DEPTH = 12
HEADS = 6
TAPS = (2, 5, 8, 11)  # the blocks whose outputs feed the head
GRID = 37  # the positional embedding's grid: 518 / 14
POS_OFFSET = 0.1  # added to the grid size before interpolating, as the official code does
FEATURES = 64
HEAD_CHANNELS = (48, 96, 192, 384)


def grid_of(x: torch.Tensor) -> tuple[int, int]:
    """The patch grid of an input, as plain ints: a traced graph is built per input shape."""
    return int(x.shape[-2]) // PATCH, int(x.shape[-1]) // PATCH


class VitSmall(nn.Module):
    """DINOv2 ViT-S/14: patch embedding, class token, 12 pre-norm blocks with LayerScale."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(
            img_size=GRID * PATCH, patch_size=PATCH, embed_dim=EMBED_DIM, strict_img_size=False
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, EMBED_DIM))
        self.mask_token = nn.Parameter(torch.zeros(1, EMBED_DIM))  # unused at inference
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(EMBED_DIM, HEADS, qkv_bias=True, init_values=1.0, norm_layer=norm)
            for _ in range(DEPTH)
        )
        self.norm = norm(EMBED_DIM)

    def position(self, rows: int, cols: int) -> torch.Tensor:
        """The positional embedding for a ``rows`` x ``cols`` patch grid: the learnt 37x37
        grid resized bicubically by the official scale factors (grid + 0.1) / 37, no
        antialiasing; timm's own resampling computes different numbers."""
        if rows == cols == GRID:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, GRID, GRID, EMBED_DIM).permute(0, 3, 1, 2)
        scale = ((rows + POS_OFFSET) / GRID, (cols + POS_OFFSET) / GRID)
        grid = F.interpolate(grid.float(), scale_factor=scale, mode="bicubic", antialias=False)
        patches = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, EMBED_DIM)
        return torch.cat((self.pos_embed[:, :1], patches), dim=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The normalized patch tokens after each of :data:`TAPS`, ``(N, rows*cols, C)``."""
        rows, cols = grid_of(x)
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.position(rows, cols)
        taps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in TAPS:
                taps.append(self.norm(tokens)[:, 1:])
        return taps


class FusionBlock(nn.Module):
    """DPT's refinement: adds an encoder skip (through a residual unit), refines, resizes
    to the next skip's size (or x2 at the end) and projects."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, path: torch.Tensor, skip: torch.Tensor | None = None, size: list[int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class DptHead(nn.Module):
    """Four token maps to one depth map at the input's resolution."""

    def __init__(self, metric: bool) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(EMBED_DIM, c, 1) for c in HEAD_CHANNELS)
        c = HEAD_CHANNELS
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        scratch = nn.Module()
        for i, channels in enumerate(HEAD_CHANNELS, start=1):
            layer = nn.Conv2d(channels, FEATURES, 3, padding=1, bias=False)
            setattr(scratch, f"layer{i}_rn", layer)
        for i in range(1, 5):
            setattr(scratch, f"refinenet{i}", FusionBlock(FEATURES))
        scratch.output_conv1 = nn.Conv2d(FEATURES, FEATURES // 2, 3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(FEATURES // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.Sigmoid() if metric else nn.ReLU(),
            nn.Identity(),
        )
        self.scratch = scratch

    def forward(self, taps: list[torch.Tensor], rows: int, cols: int) -> torch.Tensor:
        s = self.scratch
        maps = []
        for i, tokens in enumerate(taps):
            grid = tokens.permute(0, 2, 1).reshape(tokens.shape[0], EMBED_DIM, rows, cols)
            maps.append(self.resize_layers[i](self.projects[i](grid)))
        layers = (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
        l1, l2, l3, l4 = (layer(m) for layer, m in zip(layers, maps, strict=True))
        path = s.refinenet4(l4, size=[int(n) for n in l3.shape[2:]])
        path = s.refinenet3(path, l3, size=[int(n) for n in l2.shape[2:]])
        path = s.refinenet2(path, l2, size=[int(n) for n in l1.shape[2:]])
        path = s.refinenet1(path, l1)
        out = s.output_conv1(path)
        size = [rows * PATCH, cols * PATCH]
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2Small(nn.Module):
    """Depth from an RGB image normalized with ImageNet mean/std, sides multiples of 14.

    Output ``(N, H, W)``: relative inverse depth (bigger = nearer, ``max_depth`` 0), or
    metres up to ``max_depth`` for the metric heads.
    """

    def __init__(self, max_depth: float = 0.0) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.pretrained = VitSmall()
        self.depth_head = DptHead(metric=max_depth > 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = grid_of(x)
        depth = self.depth_head(self.pretrained(x), rows, cols)
        depth = depth * self.max_depth if self.max_depth > 0 else F.relu(depth)
        return depth.squeeze(1)
