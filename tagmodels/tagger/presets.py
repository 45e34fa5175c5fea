"""Named hyper-parameter sets: the paper's (Section 3.1; Appendix A.3-A.4) and small CPU ones.

A preset fixes the model's shape and the training schedule; the data decides the input
kind and size. Every field can be overridden from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tagdata.errors import UserError
from tagmodels.tagger.tag_names import DEFAULT_INITIAL_VARIANCE, NORM_EPSILON


@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one unsupervised Tagger training run."""

    dataset_kind: str  # "shapes" (binary) or "texture-mnist" (continuous)
    widths: tuple[int, ...]
    norm: str
    epochs: int
    lr: float
    batch_size: int = 100
    groups: int = 4
    iterations: int = 3
    eval_iterations: int = 5
    noise: float = 0.2
    data_mean: float = 0.26
    gate_sigmoid: bool = False
    initial_variance: float = DEFAULT_INITIAL_VARIANCE  # v at the start (continuous inputs)
    delta_z_form: str = "equation-4"  # continuous delta z (tag_names.DELTA_Z_FORMS)
    z_input: str = "probability"  # binary z as the network sees it (tag_names.Z_INPUTS)
    # The 2016 release's remaining details, off by default (TaggerConfig; docs/release-options.md):
    variance_map: str = "softplus"  # v from its raw parameter (tag_names.VARIANCE_MAPS)
    likelihood_variance: str = "v"  # continuous L(m)'s variance (tag_names.LIKELIHOOD_VARIANCES)
    m_floor: float = 0.0  # continuous cost: log(m_k + m_floor)
    norm_epsilon: float = NORM_EPSILON  # the input projection's and read-outs' normalisations
    tag_norm: str | None = None  # their kind; None: as ``norm``
    z_norm: str | None = None  # the z read-out's alone; None: as ``tag_norm``
    m0_scale: float = 1.0  # m^0's logits: N(0, 1) draws times this (tag.initial_m_logits)
    m0_smoothing: float = 0.0  # ... blurred over the image by a Gaussian of this many pixels first
    z_rank: int | None = None  # the z read-out's rank (TaggerConfig.z_rank); None: full
    initial_m: str = "random"  # m^0 in training: the paper's random draw, or "oracle" (a diagnostic; GroupingObjective)
    valid_examples: int = 1000  # validation examples scored after every epoch
    lr_decay_from: int | None = None  # epoch from which lr falls linearly to 0 (Schedule); None: constant
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates (torch's and Kingma & Ba's defaults)

    def with_overrides(self, **overrides: Any) -> "Preset":
        """A copy with the given fields replaced; None means 'keep the preset's value'."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, Preset] = {
    # Paper: Shapes, 100 epochs, Adam lr 0.0004, batch 100, K = 4, 3 iterations, BatchNorm.
    "shapes-paper": Preset("shapes", (2000, 1000, 500), "batch", epochs=100, lr=4e-4),
    # CPU-sized (the demo): LayerNorm (Tagger*) learns Shapes far faster than BatchNorm, and
    # small batches give more updates per CPU second.
    "shapes-small": Preset(
        "shapes", (500, 250, 125), "layer", epochs=40, lr=2e-3, batch_size=32, valid_examples=500
    ),
    # `make demo` trains it for 2 minutes (`--budget-minutes 2`: 23 epochs of 5,000 images on an
    # idle 2-core AMD EPYC, fp32; 18 without a budget): shapes-small at 300/150/75. Batch 64 at
    # lr 3e-3 beat batch 32 at 2e-3 for the same CPU time over 3 seeds (validation AMI 0.464
    # against 0.444); fewer training iterations, narrower layers, batch 128 and the other rates
    # did not (results/shapes/ablations/demo-budget.md). Still short of shapes-small's 0.64 after 40 epochs.
    "demo": Preset(
        "shapes", (300, 150, 75), "layer", epochs=18, lr=3e-3, batch_size=64, valid_examples=250
    ),
    # Paper: TextureMNIST, 150 unsupervised epochs, lr 0.001, sigmoid on the combinator gate.
    "texture-paper": Preset(
        "texture-mnist", (3000, 2000, 1000), "batch", epochs=150, lr=1e-3,
        data_mean=0.5, gate_sigmoid=True,
    ),
    # CPU-sized TextureMNIST (docs/textures.md): on a CPU the number of Adam updates decides,
    # hence small batches and a higher lr. 24 epochs of 20,000 images (about 24 minutes on
    # one core) learn z and v, but group by position (AMI about 0.1), not yet by texture.
    "texture-cpu": Preset(
        "texture-mnist", (800, 400, 200), "layer", epochs=24, lr=2e-3, batch_size=32,
        data_mean=0.5, gate_sigmoid=True, valid_examples=500,
    ),
    "texture-small": Preset(
        "texture-mnist", (800, 400, 200), "layer", epochs=10, lr=1e-3,
        data_mean=0.5, gate_sigmoid=True, valid_examples=500,
    ),
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name, naming the valid ones when it is unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
