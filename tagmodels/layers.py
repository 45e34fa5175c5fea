"""Building blocks shared by every model: initialisation, normalisation, per-unit affine.

The paper initialises weights N(0, 1) / sqrt(fan_in) and normalises pre-activations with
BatchNorm (Tagger) or LayerNorm (Tagger*); the learned bias (and, where used, scale) is
applied after the normalisation, as in the Ladder network.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from tagmodels.tagger.tag_names import NORM_EPSILON

Norm = Literal["batch", "layer"]


def scaled_linear(n_in: int, n_out: int) -> nn.Linear:
    """A bias-free linear map with weights N(0, 1) / sqrt(fan_in); the bias comes after the norm."""
    layer = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / math.sqrt(n_in))
    return layer


def autocast_device_type(device: torch.device) -> str:
    """The device type autocast knows ``device`` by. The meta device (shapes only, on which the
    device checker runs training steps without an accelerator) has no autocast of its own;
    the CPU's stands in, and leaves meta tensors alone."""
    return "cpu" if device.type == "meta" else device.type


def make_norm(kind: Norm, width: int, running_stats: bool = True, eps: float = NORM_EPSILON) -> nn.Module:
    """Normalisation without its own affine parameters (those follow separately).

    "batch" normalises each unit over all rows of the batch; in Tagger the rows are
    examples x groups, as in the reference release. Tagger runs one network several
    iterations whose activations differ in scale, so it keeps no running statistics
    (``running_stats=False``) and normalises with the batch at evaluation too.
    "layer" normalises each row over its units. ``eps`` is added to the variance.
    """
    if kind == "batch":
        if running_stats:
            return RunningBatchNorm(width, eps=eps, affine=False)
        return nn.BatchNorm1d(width, eps=eps, affine=False, track_running_stats=False)
    if kind == "layer":
        return nn.LayerNorm(width, eps=eps, elementwise_affine=False)
    raise ValueError(f"unknown normalisation {kind!r}: expected 'batch' or 'layer'")


class RunningBatchNorm(nn.BatchNorm1d):
    """BatchNorm with running statistics that normalises in the statistics' dtype.

    Under bf16 autocast a population trained as one (torch.func.vmap) hands BatchNorm a bf16
    input, and vmap's batch_norm refuses one whose running statistics are float32; in float32
    the normalisation is also more exact. The result comes back in the input's dtype."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        assert self.running_mean is not None
        return super().forward(h.to(self.running_mean.dtype)).to(h.dtype)


class UnitAffine(nn.Module):
    """Per-unit scale and bias applied after a normalisation (scale optional)."""

    def __init__(self, width: int, scale: bool = False) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(width))
        self.scale = nn.Parameter(torch.ones(width)) if scale else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            h = h * self.scale
        return h + self.bias
