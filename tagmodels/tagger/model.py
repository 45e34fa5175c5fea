"""Tagger: the TAG framework with a Ladder network as its parametric mapping.

Each iteration i maps, for every group k separately, the inference inputs
[z_k, delta z_k, m_k, L(m_k)] through one shared network to the next z_k and m_k
(paper, Section 2 and Fig. 2). Groups run as extra batch rows, so a model trained with
K groups and T iterations evaluates with any K and T.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from tagmodels import randomness
from tagmodels.layers import Norm, UnitAffine, autocast_device_type, make_norm, scaled_linear
from tagmodels.tagger import tag
from tagmodels.tagger.ladder import Ladder, TopActivation
from tagmodels.tagger.tag_names import (
    DEFAULT_INITIAL_VARIANCE,
    NORM_EPSILON,
    DeltaZForm,
    LikelihoodVariance,
    VarianceMap,
    ZInput,
)

IterationReduction = Literal["mean", "sum"]
REMOVED_LOGIT = -1e4  # m logit of a removed group: its softmax weight underflows to 0
ABLATABLE_INPUTS = ("delta_z", "likelihood")


@dataclass
class TaggerConfig:
    """Everything needed to rebuild a Tagger; stored as JSON beside every run."""

    n_inputs: int
    input_kind: tag.InputKind = "binary"
    widths: tuple[int, ...] = (2000, 1000, 500)
    norm: Norm = "batch"
    noise: float = 0.2  # beta (bit-flip probability) or sigma (Gaussian std)
    data_mean: float = 0.26  # z^0
    gate_sigmoid: bool = False  # the paper's sigmoid on the combinator gate (continuous)
    delta_z_form: DeltaZForm = "equation-4"  # or "gradient", "algorithm-1" (tag_names.py)
    z_input: ZInput = "probability"  # binary: sigmoid(z) or "logit", the pre-sigmoid z (tag_names.py)
    iteration_reduction: IterationReduction = "mean"  # Section 3.1 averages over iterations; "sum": equation (1)
    top_activation: TopActivation = "softmax"  # the Ladder's top (Rasmus et al.); "relu" an option
    zeroed_inputs: tuple[str, ...] = ()  # ablations: "delta_z" and/or "likelihood" fed as zeros
    # v at the start (continuous inputs), learned from there; docs/textures.md compares starts.
    initial_variance: float = DEFAULT_INITIAL_VARIANCE
    # The 2016 release's remaining details (tag_names.py; docs/release-options.md), each off by default:
    variance_map: VarianceMap = "softplus"  # v from its raw parameter; or "exp-asinh"
    likelihood_variance: LikelihoodVariance = "v"  # continuous L(m): sigma^2 + v; or "v-squared"
    m_floor: float = 0.0  # continuous cost: log(m_k + m_floor) in the mixture; the release 1e-5
    norm_epsilon: float = NORM_EPSILON  # of the input projection's and read-outs' norms; the release 1e-10
    # Those norms' kind; None: as ``norm``. "batch" with norm "layer": LayerNorm in the Ladder only.
    tag_norm: Norm | None = None
    # The z read-out's alone; None: as ``tag_norm``. "layer" with norm "batch": Tagger with its
    # z read-out per row, which grouped Shapes as Tagger* does (docs/ablations.md, norm-split).
    z_norm: Norm | None = None
    # m^0 = softmax over groups of these logits: N(0, 1) draws (the paper), blurred over the image
    # by a Gaussian of m0_smoothing pixels, times m0_scale (tag.initial_m_logits; docs/textures.md).
    m0_scale: float = 1.0
    m0_smoothing: float = 0.0
    # The z read-out through a rank-R linear map (None: full rank, the paper's): each group's z
    # then lies in an R-dimensional affine subspace of the input space, enough for a pure texture
    # of the TextureMNIST bank (2 dimensions each) but not for a composite (docs/textures.md).
    z_rank: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the defaults, the paper's Tagger on Shapes (Section 3.1),
        the input size aside: what makes this model another than the paper's (JSON-ready)."""
        paper = TaggerConfig(n_inputs=self.n_inputs)
        return {key: value for key, value in asdict(self).items() if value != getattr(paper, key)}

    @classmethod
    def from_dict(cls, data: dict) -> "TaggerConfig":
        data = dict(data)
        data["widths"] = tuple(data["widths"])
        data["zeroed_inputs"] = tuple(data.get("zeroed_inputs", ()))
        return cls(**data)


@dataclass
class TaggerOutput:
    """Per-iteration results: z^i and log m^i (B, K, N) and the denoising cost of each.

    ``cost[i]`` is -log q_i(x) averaged over batch and elements; ``top_logits`` are the
    Ladder's top logits of the last iteration (B, K, top width), which classification heads read.
    """

    z: list[torch.Tensor]
    log_m: list[torch.Tensor]
    cost: torch.Tensor
    top_logits: torch.Tensor

    @property
    def m(self) -> list[torch.Tensor]:
        return [log_m.exp() for log_m in self.log_m]


class Tagger(nn.Module):
    """TAG + Ladder, for binary or continuous inputs of ``n_inputs`` elements."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        if not config.initial_variance > 0:
            raise ValueError(f"initial_variance must be positive, got {config.initial_variance}")
        unknown = set(config.zeroed_inputs) - set(ABLATABLE_INPUTS)
        if unknown:
            raise ValueError(f"cannot zero {sorted(unknown)}: choose from {', '.join(ABLATABLE_INPUTS)}")
        if not (math.isfinite(config.m_floor) and config.m_floor >= 0):
            raise ValueError(f"m_floor must be a non-negative number, got {config.m_floor}")
        if not (math.isfinite(config.m0_scale) and config.m0_scale > 0):
            raise ValueError(f"m0_scale must be positive, got {config.m0_scale}")
        if not (math.isfinite(config.m0_smoothing) and config.m0_smoothing >= 0):
            raise ValueError(f"m0_smoothing must be a non-negative number, got {config.m0_smoothing}")
        if not (math.isfinite(config.norm_epsilon) and config.norm_epsilon > 0):
            raise ValueError(f"norm_epsilon must be positive, got {config.norm_epsilon}")
        if config.z_rank is not None and config.z_rank < 1:
            raise ValueError(f"z_rank must be at least 1, got {config.z_rank}")
        self.config = config
        n, width = config.n_inputs, config.widths[0]
        # The TAG part's normalisations: batch statistics over examples and groups, or per row.
        tag_norm, eps = config.tag_norm or config.norm, config.norm_epsilon
        self.input_map = scaled_linear(4 * n, width)
        self.input_norm = make_norm(tag_norm, width, running_stats=False, eps=eps)
        self.input_affine = UnitAffine(width)
        self.ladder = Ladder(
            config.widths, config.norm, config.gate_sigmoid, config.top_activation, running_stats=False
        )
        rank = config.z_rank
        self.z_map = scaled_linear(width, n) if rank is None else nn.Sequential(
            scaled_linear(width, rank), scaled_linear(rank, n)
        )
        self.z_norm = make_norm(config.z_norm or tag_norm, n, running_stats=False, eps=eps)
        self.z_affine = UnitAffine(n, scale=True)
        self.m_map = scaled_linear(width, n)
        self.m_norm = make_norm(tag_norm, n, running_stats=False, eps=eps)
        self.m_scale = nn.Parameter(torch.ones(()))
        if config.input_kind == "continuous":
            # v = variance_map(v_raw) stays positive; v_raw starts where v is initial_variance.
            v_raw = tag.raw_variance(config.initial_variance, config.variance_map)
            self.v_raw = nn.Parameter(torch.tensor(v_raw, dtype=torch.float32))

    @property
    def variance(self) -> torch.Tensor | None:
        """The learned output variance v (continuous inputs only)."""
        if self.config.input_kind != "continuous":
            return None
        return tag.variance(self.v_raw, self.config.variance_map)

    def initial_state(self, batch: int, groups: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z^0 = the data mean; m^0 = softmax over groups of random logits, N(0, 1) samples by
        default (log m^0 returned)."""
        cfg = self.config
        z0 = like.new_full((batch, groups, cfg.n_inputs), cfg.data_mean)
        logits = tag.initial_m_logits(randomness.normal_like(z0), cfg.m0_scale, cfg.m0_smoothing)
        log_m0 = torch.log_softmax(logits, dim=1)
        return z0, log_m0

    def step(
        self, x_tilde: torch.Tensor, z: torch.Tensor, z_in: torch.Tensor, log_m: torch.Tensor,
        network_autocast: tuple[bool, torch.dtype] = (False, torch.bfloat16),
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One iteration of the parametric mapping; returns z pre-activation, m logits, top logits.

        The network runs under ``network_autocast`` (enabled, dtype); its outputs come back in
        the dtype of the TAG arithmetic (that of z).
        """
        cfg = self.config
        b, k, n = z.shape
        delta_z, likelihood = tag.delta_z_and_likelihood(
            cfg.input_kind, x_tilde, z, log_m, cfg.noise, self.variance, cfg.delta_z_form, cfg.likelihood_variance
        )
        if "delta_z" in cfg.zeroed_inputs:
            delta_z = torch.zeros_like(delta_z)
        if "likelihood" in cfg.zeroed_inputs:
            likelihood = torch.zeros_like(likelihood)
        inputs = torch.cat([z_in, delta_z, log_m.exp(), likelihood], dim=-1).reshape(b * k, 4 * n)
        enabled, dtype = network_autocast
        with torch.autocast(autocast_device_type(inputs.device), dtype=dtype, enabled=enabled):
            h0 = torch.relu(self.input_affine(self.input_norm(self.input_map(inputs))))
            out = self.ladder(h0)
            bottom = out.reconstruction[0]
            z_pre = self.z_affine(self.z_norm(self.z_map(bottom))).view(b, k, n)
            m_logits = (self.m_scale * self.m_norm(self.m_map(bottom))).view(b, k, n)
        return z_pre.to(z.dtype), m_logits.to(z.dtype), out.top_logits.to(z.dtype).view(b, k, -1)

    def forward(
        self,
        x: torch.Tensor,
        groups: int = 4,
        iterations: int = 3,
        corrupt: bool = True,
        remove_group: int | None = None,
        log_m0: torch.Tensor | None = None,
    ) -> TaggerOutput:
        """Run ``iterations`` TAG iterations with ``groups`` groups on x (B, N).

        The network sees only x~ (x itself when ``corrupt`` is False, as in evaluation);
        the clean x is used only as the target of the cost. ``remove_group`` sets that
        group's m logits very low just before the last softmax (paper, Fig. 5 E2).
        ``log_m0`` replaces the random initial assignments (B, K, N) when given.
        """
        device_type = autocast_device_type(x.device)
        # Under bf16 autocast only the network runs in bf16: the TAG arithmetic (softmax over
        # groups, delta z, L(m), the cost) stays float32, where bf16 would round m to sums of
        # 1.0078 and the squashed p to 1, making the cost infinite.
        network_autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        with torch.autocast(device_type, enabled=False):
            return self._iterate(x, groups, iterations, corrupt, remove_group, log_m0, network_autocast)

    def _iterate(
        self, x: torch.Tensor, groups: int, iterations: int, corrupt: bool,
        remove_group: int | None, log_m0: torch.Tensor | None, network_autocast: tuple[bool, torch.dtype],
    ) -> TaggerOutput:
        cfg = self.config
        x_tilde = tag.corrupt(x, cfg.input_kind, cfg.noise) if corrupt else x
        z, log_m = self.initial_state(x.shape[0], groups, x)
        if log_m0 is not None:
            log_m = log_m0
        z_in = z
        zs, log_ms, costs = [], [], []
        top = x.new_empty(0)
        for i in range(iterations):
            z_pre, m_logits, top = self.step(x_tilde, z, z_in, log_m, network_autocast)
            if remove_group is not None and i == iterations - 1:
                removed = torch.zeros(groups, 1, dtype=torch.bool, device=x.device)
                removed[remove_group] = True
                m_logits = m_logits.masked_fill(removed, REMOVED_LOGIT)
            log_m = torch.log_softmax(m_logits, dim=1)
            if cfg.input_kind == "binary":
                z = torch.sigmoid(z_pre)
                z_in = z_pre if cfg.z_input == "logit" else z
            else:
                z = z_in = z_pre
            cost = tag.negative_log_likelihood(cfg.input_kind, x, z, log_m, self.variance, cfg.m_floor)
            zs.append(z)
            log_ms.append(log_m)
            costs.append(cost.mean())
        return TaggerOutput(z=zs, log_m=log_ms, cost=torch.stack(costs), top_logits=top)

    def training_cost(self, output: TaggerOutput) -> torch.Tensor:
        """C = the mean over iterations of -log q_i(x) (Section 3.1), or their sum (equation 1)."""
        if self.config.iteration_reduction == "mean":
            return output.cost.mean()
        if self.config.iteration_reduction == "sum":
            return output.cost.sum()
        raise ValueError(f"unknown iteration_reduction {self.config.iteration_reduction!r}: 'mean' or 'sum'")
