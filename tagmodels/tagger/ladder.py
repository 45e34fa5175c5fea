"""A fully connected Ladder network (Rasmus et al. 2015) as Tagger uses it.

Encoder layer l: z_l = normalise(W_l h_{l-1}) (the lateral signal), h_l = ReLU(z_l + b_l);
the top layer is a softmax with a learned per-unit scale c, h_L = softmax(c (z_L + b_L)), as
in Rasmus et al. and the 2016 Tagger (a ReLU top is an option). Decoder from the top down:
u_l = normalise(V_l z^_{l+1}) (at the top, u_L = normalise(h_L)), z^_l = g(z_l, u_l) with
the Gaussian combinator g. Tagger injects no noise inside the Ladder
and uses no Ladder denoising costs; the FC Ladder baseline passes ``noise_std`` and builds its
per-layer costs from :class:`LadderOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from tagmodels import randomness
from tagmodels.layers import Norm, UnitAffine, make_norm, scaled_linear

TopActivation = Literal["softmax", "relu"]
TOP_ACTIVATIONS: tuple[str, ...] = ("softmax", "relu")


class GaussianCombinator(nn.Module):
    """The per-unit combinator g(z, u) of the Ladder network.

    mu = a1 sigmoid(a2 u + a3) + a4 u + a5,  v = a6 sigmoid(a7 u + a8) + a9 u + a10,
    z^ = (z - mu) v + mu;  a2 = a7 = 1 at the start, the rest 0. ``gate_sigmoid`` squashes v
    into (0, 1), which the paper found more stable for continuous inputs.
    """

    def __init__(self, width: int, gate_sigmoid: bool = False) -> None:
        super().__init__()
        a = torch.zeros(10, width)
        a[1] = 1.0
        a[6] = 1.0
        self.a = nn.Parameter(a)
        self.gate_sigmoid = gate_sigmoid

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        a = self.a
        mu = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        v = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        if self.gate_sigmoid:
            v = torch.sigmoid(v)
        return (z - mu) * v + mu


@dataclass
class LadderOutput:
    """One pass: the top activation and its logits, the lateral signals z_l, the
    reconstructions z^_l and the pre-activations W_l h_{l-1} before their normalisation.

    ``top_logits`` is c (z_L + b_L) for a softmax top (heads take log_softmax of it, which
    is stable), the pre-activation z_L + b_L for a ReLU top. Index 0 of the lists is the
    input layer (its lateral signal is the input itself), index L the top; ``pre_activation``
    runs from layer 1 (its index 0 is layer 1).
    """

    top: torch.Tensor
    top_logits: torch.Tensor
    lateral: list[torch.Tensor]
    reconstruction: list[torch.Tensor]
    pre_activation: list[torch.Tensor]


class Ladder(nn.Module):
    """Fully connected Ladder over ``widths`` = (input width, layer 1 width, ..., top width)."""

    def __init__(
        self,
        widths: Sequence[int],
        norm: Norm = "batch",
        gate_sigmoid: bool = False,
        top_activation: TopActivation = "softmax",
        running_stats: bool = True,
    ) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a Ladder needs an input width and at least one layer width")
        self.norm = norm
        self.running_stats = running_stats
        self.gate_sigmoid = gate_sigmoid
        self.widths: list[int] = [int(widths[0])]
        self.encoder = nn.ModuleList()
        self.encoder_norm = nn.ModuleList()
        self.encoder_affine = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.decoder_norm = nn.ModuleList([make_norm(norm, self.widths[0], running_stats)])
        self.combinator = nn.ModuleList([GaussianCombinator(self.widths[0], gate_sigmoid)])
        self.grow(widths[1:], top_activation)

    def grow(self, widths: Sequence[int], top_activation: TopActivation = "softmax") -> None:
        """Add fresh layers on top (Tagger's supervised phase adds two); the old top becomes ReLU."""
        if top_activation not in TOP_ACTIVATIONS:
            raise ValueError(f"unknown top activation {top_activation!r}: choose one of {', '.join(TOP_ACTIVATIONS)}")
        for width in widths:
            below = self.widths[-1]
            self.encoder.append(scaled_linear(below, width))
            self.encoder_norm.append(make_norm(self.norm, width, self.running_stats))
            self.encoder_affine.append(UnitAffine(width))
            self.decoder.append(scaled_linear(width, below))
            self.decoder_norm.append(make_norm(self.norm, width, self.running_stats))
            self.combinator.append(GaussianCombinator(width, self.gate_sigmoid))
            self.widths.append(int(width))
        self.top_activation = top_activation
        # c, the softmax top's per-unit scale (a fresh top gets a fresh one).
        self.top_scale = nn.Parameter(torch.ones(self.widths[-1])) if top_activation == "softmax" else None

    @property
    def depth(self) -> int:
        """Number of encoder layers L."""
        return len(self.encoder)

    def forward(self, x: torch.Tensor, noise_std: float = 0.0) -> LadderOutput:
        """Encode ``x`` (rows x input width) and decode it back down to the input layer."""
        h = x + noise_std * randomness.normal_like(x) if noise_std else x
        lateral, pre_activation = [h], []
        for layer in range(self.depth):
            pre_activation.append(self.encoder[layer](h))
            z = self.encoder_norm[layer](pre_activation[-1])
            if noise_std:
                z = z + noise_std * randomness.normal_like(z)
            lateral.append(z)
            h = self.encoder_affine[layer](z)
            if layer < self.depth - 1:
                h = torch.relu(h)
        if self.top_scale is not None:
            top_logits = self.top_scale * h
            top = torch.softmax(top_logits, dim=-1)
        else:
            top_logits, top = h, torch.relu(h)
        u = self.decoder_norm[self.depth](top)
        z_hat = self.combinator[self.depth](lateral[self.depth], u)
        reconstruction = [z_hat]
        for layer in reversed(range(self.depth)):
            u = self.decoder_norm[layer](self.decoder[layer](z_hat))
            z_hat = self.combinator[layer](lateral[layer], u)
            reconstruction.append(z_hat)
        reconstruction.reverse()
        return LadderOutput(
            top=top, top_logits=top_logits, lateral=lateral, reconstruction=reconstruction,
            pre_activation=pre_activation,
        )
