"""Batch norm folded into the preceding convolution, computed in float64.

Done once before tracing, it leaves oneDNN's fused kernels plain
convolution + bias + activation partitions, which run faster than ones that
carry the batch norm, and the folded weights are rounded to float32 once,
from exact values.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter((conv.weight.double() * scale[:, None, None, None]).float())
    fused.bias = nn.Parameter(
        ((bias - norm.running_mean.double()) * scale + norm.bias.double()).float()
    )
    return fused


def _after_norm(norm: nn.BatchNorm2d) -> nn.Module:
    """What the norm module did besides normalizing (timm's BatchNormAct2d: drop, act)."""
    return nn.Sequential(*(getattr(norm, name) for name in ("drop", "act") if hasattr(norm, name)))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) where every Conv2d directly followed by a
    BatchNorm2d among its parent's children carries the norm in its weights."""
    model = copy.deepcopy(model).eval()
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(parent, conv_name, _folded(conv, norm))
                setattr(parent, norm_name, _after_norm(norm))
    return model
