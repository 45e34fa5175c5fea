"""Label budgets of Table 2: every training label, or 1,000 labelled examples drawn by seed.

The 1,000 are class-balanced, 100 per class, as in the usual semi-supervised MNIST
protocol; a two-digit image (TextureMNIST2) counts for the class of its bottom digit (the
first label, drawn first), as the 2016 release draws them. The subset depends only on the
labels and the seed, so every method of one seed sees the same labelled examples.
"""

from __future__ import annotations

import torch

from tagdata.errors import UserError
from tagmodels.baselines.classifiers import N_CLASSES
from tagmodels.benchmark.settings import BUDGETS

SEMI_SUPERVISED_LABELS = 1000


def labelled_subset(labels: torch.Tensor, budget: str, seed: int) -> torch.Tensor | None:
    """Sorted indices of the labelled training examples, or None when all are labelled.

    ``labels`` is (n, digits). Raises UserError when the split is too small for the budget.
    """
    if budget == "50000":
        return None
    if budget != "1000":
        raise UserError(f"unknown label budget {budget!r}: use {' or '.join(BUDGETS)}")
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    per_class = SEMI_SUPERVISED_LABELS // N_CLASSES
    picks = []
    for digit in range(N_CLASSES):
        members = torch.nonzero(labels[:, 0] == digit).flatten()
        if len(members) < per_class:
            raise UserError(
                f"only {len(members)} training examples with digit {digit} at the bottom; "
                f"{per_class} per class are needed"
            )
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks).sort().values
