"""Per-iteration grouping quality: AMI and ARI on clean input, denoising cost on corrupted input.

This is the layout of the paper's Table 1a. The random initial m (and the corruption) are
drawn from a fixed seed so that evaluating the same run twice gives the same figures.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from tagmodels.metrics import grouping_scores
from tagmodels.tagger.model import Tagger


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block on its own random stream, leaving the caller's RNG state untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def evaluate_grouping(
    model: Tagger,
    x: torch.Tensor,
    segmentation: torch.Tensor,
    groups: int,
    iterations: int,
    batch_size: int = 100,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Mean AMI, ARI and denoising cost after each iteration over the examples in ``x``."""
    ami = [[] for _ in range(iterations)]
    ari = [[] for _ in range(iterations)]
    cost = np.zeros(iterations)
    was_training = model.training
    model.eval()
    with seeded(seed):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            seg = segmentation[start : start + batch_size]
            clean = model(xb, groups, iterations, corrupt=False)
            for i, log_m in enumerate(clean.log_m):
                scores = grouping_scores(seg, log_m)
                ami[i].append(scores["ami"])
                ari[i].append(scores["ari"])
            noisy = model(xb, groups, iterations, corrupt=True)
            cost += noisy.cost.double().cpu().numpy() * xb.shape[0]
    model.train(was_training)
    return [
        {
            "iteration": i + 1,
            "ami": float(np.nanmean(np.concatenate(ami[i]))),
            "ari": float(np.nanmean(np.concatenate(ari[i]))),
            "denoising_cost": float(cost[i] / x.shape[0]),
        }
        for i in range(iterations)
    ]
