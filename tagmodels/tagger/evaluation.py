"""Per-iteration grouping quality: AMI and ARI on clean input, denoising cost on corrupted input.

This is the layout of the paper's Table 1a, with the FG-ARI and mSC that object-centric work
reports beside it (see :mod:`tagmodels.metrics`); the AMI uses the paper's normalisation (max of
the two entropies, see :mod:`tagmodels.metrics`). The random initial m (and the corruption) are
drawn from a fixed seed so that evaluating the same run twice gives the same figures.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from tagmodels.metrics import PAPER_AMI_AVERAGE, SCORES, grouping_scores
from tagmodels.tagger.model import Tagger


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block on its own random stream, leaving the caller's RNG state untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def grouping_per_iteration(
    model: Tagger, x: torch.Tensor, segmentation: torch.Tensor, groups: int, iterations: int,
    batch_size: int = 100, seed: int = 0, average_method: str = PAPER_AMI_AVERAGE,
) -> list[dict[str, float]]:
    """Mean AMI, ARI, FG-ARI and mSC after each iteration, on clean input (Section 3.1)."""
    scores: list[dict[str, list[np.ndarray]]] = [{name: [] for name in SCORES} for _ in range(iterations)]
    with seeded(seed), _eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            clean = model(x[start : start + batch_size], groups, iterations, corrupt=False)
            for i, log_m in enumerate(clean.log_m):
                batch = grouping_scores(segmentation[start : start + batch_size], log_m, average_method=average_method)
                for name in SCORES:
                    scores[i][name].append(batch[name])
    return [
        {"iteration": i + 1, **{name: float(np.nanmean(np.concatenate(parts))) for name, parts in scores[i].items()}}
        for i in range(iterations)
    ]


@torch.no_grad()
def denoising_cost_per_iteration(
    model: Tagger, x: torch.Tensor, groups: int, iterations: int, batch_size: int = 100, seed: int = 0
) -> list[float]:
    """The training cost -log q_i(x) on corrupted input after each iteration, per example and
    element: batches are weighted by their size, so the figure does not depend on batch_size."""
    total = np.zeros(iterations)
    with seeded(seed), _eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            total += model(xb, groups, iterations, corrupt=True).cost.double().cpu().numpy() * xb.shape[0]
    return [float(c / x.shape[0]) for c in total]


def evaluate_grouping(
    model: Tagger, x: torch.Tensor, segmentation: torch.Tensor, groups: int, iterations: int,
    batch_size: int = 100, seed: int = 0, cost_x: torch.Tensor | None = None,
    average_method: str = PAPER_AMI_AVERAGE,
) -> list[dict[str, float]]:
    """Table 1a's rows: AMI and ARI (clean ``x``) and the denoising cost per iteration.

    The cost is measured on ``cost_x`` when given (the paper: on the validation split), else
    on ``x``.
    """
    rows = grouping_per_iteration(model, x, segmentation, groups, iterations, batch_size, seed, average_method)
    costs = denoising_cost_per_iteration(model, x if cost_x is None else cost_x, groups, iterations, batch_size, seed)
    return [{**row, "denoising_cost": cost} for row, cost in zip(rows, costs)]


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode for a block, restoring the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
