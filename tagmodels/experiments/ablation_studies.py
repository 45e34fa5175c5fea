"""The named sets of variants `tagtool ablation --study` trains: each variant is one change
from the base run (the preset and the command line's overrides), given as the fields it sets.

A field of the preset (lr, noise, data_mean, lr_decay_from, ...) or of ``TaggerConfig``
(top_activation, iteration_reduction, zeroed_inputs, ...); docs/ablations.md says why each
variant is in its study.
"""

from __future__ import annotations

from typing import Any, Callable

from tagmodels.tagger.presets import Preset
from tagmodels.tagger.tag_names import RELEASE_INITIAL_VARIANCE

Variants = dict[str, dict[str, Any]]


def learning_check(base: Preset) -> Variants:
    """Full TAG against each of the paper's two error signals (Section 2.1) fed as zeros."""
    return {"full": {}, "no-delta-z": {"zeroed_inputs": ["delta_z"]}, "no-likelihood": {"zeroed_inputs": ["likelihood"]}}


def shapes_gap(base: Preset) -> Variants:
    """Candidate causes of the gap to the paper's Shapes AMI, most likely first: the 2016
    release's choices, then the schedule, then the data-side constants of Section 3.1, then
    the optimiser's settings."""
    return {
        "base": {},
        "z-input-logit": {"z_input": "logit"},
        "lr-decay-second-half": {"lr_decay_from": base.epochs // 2},
        "lr-half": {"lr": base.lr / 2},
        "lr-double": {"lr": base.lr * 2},
        "top-relu": {"top_activation": "relu"},
        "cost-sum-over-iterations": {"iteration_reduction": "sum"},
        "data-mean-0.5": {"data_mean": 0.5},
        "bit-flip-0.1": {"noise": 0.1},
        "bit-flip-0.3": {"noise": 0.3},
        # Adam's second-moment decay (Kingma & Ba: 0.999): a shorter memory adapts each
        # parameter's step size faster while the gradients' scale changes.
        "adam-beta2-0.99": {"adam_betas": (0.9, 0.99)},
        "adam-beta1-0.5": {"adam_betas": (0.5, 0.999)},
    }


def texture_grouping(base: Preset) -> Variants:
    """What might decide whether a second group takes the digit on TextureMNIST1, the question
    docs/textures.md leaves open: the network's width per pixel, the 2016 release's slowly annealed v and
    flat early L(m), the corruption noise, the learning rate, the number of training
    iterations, where the TAG part normalises, and excess groups."""
    def scaled(factor: float) -> tuple[int, ...]:
        return tuple(int(width * factor) for width in base.widths)

    return {
        "base": {},
        "width-half": {"widths": scaled(1 / 2)},
        "width-double": {"widths": scaled(2)},
        "release-variance": {"variance_map": "exp-asinh", "initial_variance": RELEASE_INITIAL_VARIANCE,
                             "likelihood_variance": "v-squared"},
        "noise-0.1": {"noise": 0.1},
        "noise-0.3": {"noise": 0.3},
        "lr-half": {"lr": base.lr / 2},
        "iterations-5": {"iterations": 5},
        "tag-norm-batch": {"tag_norm": "batch"},
        "width-quarter": {"widths": scaled(1 / 4)},
        "width-eighth": {"widths": scaled(1 / 8)},
        # Section 3.2: an excess group "seems to speed up the learning process".
        "groups-3": {"groups": 3},
        "groups-4": {"groups": 4},
    }


def texture_split(base: Preset) -> Variants:
    """Whether the groups split TextureMNIST by texture once one group's z cannot hold the
    composite image: the z read-out at a rank that fits any pure texture of the bank (2
    dimensions each, 40 for the bank) but not a digit-shaped mix of two, with and without
    m^0 smoothed over the image (which decides whether the groups' symmetry breaks at all;
    docs/textures.md); then width and noise once the symmetry is broken."""
    return {
        "base": {},
        "m0-smooth3": {"m0_smoothing": 3.0},
        "z-rank-48": {"z_rank": 48},
        "z-rank-48-m0-smooth3": {"z_rank": 48, "m0_smoothing": 3.0},
        # The rank on either side: below the bank's 40 dimensions, and twice 48.
        "z-rank-16-m0-smooth3": {"z_rank": 16, "m0_smoothing": 3.0},
        "z-rank-96-m0-smooth3": {"z_rank": 96, "m0_smoothing": 3.0},
        # With the symmetry broken by m^0 smoothing: twice the width (the 2016 release's first layer
        # has 3.8 units per pixel, ours 1) and half the corruption noise (a cleaner delta z).
        "m0-smooth3-width-double": {"widths": tuple(2 * width for width in base.widths), "m0_smoothing": 3.0},
        "m0-smooth3-noise-0.1": {"noise": 0.1, "m0_smoothing": 3.0},
    }


def demo_budget(base: Preset) -> Variants:
    """Ways to spend the demo's fixed CPU time (issue: AMI >= 0.6 in 3 minutes): on Shapes the
    validation AMI follows the number of Adam updates, so cheaper steps (fewer training
    iterations, narrower layers) buy more of them. Epochs are scaled by the step-time ratios
    measured on a 2-core AMD EPYC (fp32, eager; docs/ablations.md), so each variant costs
    about the base's time there."""
    def epochs(ratio: float) -> int:
        return round(base.epochs * ratio)

    narrow = tuple(width * 2 // 3 for width in base.widths)
    return {
        "base": {},
        "iterations-2": {"iterations": 2, "epochs": epochs(1.5)},
        "widths-two-thirds": {"widths": narrow, "epochs": epochs(1.3)},
        "widths-two-thirds-iterations-2": {"widths": narrow, "iterations": 2, "epochs": epochs(1.75)},
        "batch-64": {"batch_size": 2 * base.batch_size, "lr": base.lr * 1.5, "epochs": epochs(1.3)},
        "tag-norm-batch": {"tag_norm": "batch"},
        # Follow-ups of batch-64: its learning rate alone, a higher one, and batch 128.
        "batch-64-same-lr": {"batch_size": 2 * base.batch_size, "epochs": epochs(1.3)},
        "batch-64-lr-double": {"batch_size": 2 * base.batch_size, "lr": base.lr * 2, "epochs": epochs(1.3)},
        "batch-128": {"batch_size": 4 * base.batch_size, "lr": base.lr * 2, "epochs": epochs(1.3)},
    }


def norm_split(base: Preset) -> Variants:
    """Which LayerNorm makes Tagger* group better than Tagger (Table 1: 0.97 against 0.79):
    the Ladder's, or the TAG part's (the input projection and the z and m read-outs, per row
    in Tagger*, over examples and groups in Tagger and in the 2016 release). Each pairing of
    the two normalisations, whatever the base preset's; then Tagger with its z read-out alone per row."""
    return {
        "layer": {"norm": "layer", "tag_norm": "layer"},
        "ladder-layer-tag-batch": {"norm": "layer", "tag_norm": "batch"},
        "ladder-batch-tag-layer": {"norm": "batch", "tag_norm": "layer"},
        "batch": {"norm": "batch", "tag_norm": "batch"},
        "batch-z-layer": {"norm": "batch", "tag_norm": "batch", "z_norm": "layer"},
    }


STUDIES: dict[str, Callable[[Preset], Variants]] = {
    "learning-check": learning_check, "shapes-gap": shapes_gap, "texture-grouping": texture_grouping,
    "texture-split": texture_split, "demo-budget": demo_budget, "norm-split": norm_split,
}
