"""Epochs that fit a time budget on this machine: the loop's own step, timed here first.

A newcomer's question is "what can two minutes buy on this machine", and the answer differs
by a factor of several between the CPUs we get (an fp32-only AMD EPYC, an Intel Xeon with
bf16 matrix units) and with what else the machine runs. So a run given a budget times a few
of its own training steps (same model, data, batch, precision, threads and population)
before it starts and trains the whole epochs that fit; config.json records the budget, the
measured speed and the epochs chosen, and the run resumes like any other.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from tagmodels import randomness
from tagmodels.timing import seconds_per_call
from tagmodels.training.loop import adam
from tagmodels.training.precision import autocast
from tagmodels.training.step import Objective, PopulationCost, train_step

# A validation example costs about a third of a training one: the forward pass alone.
VALIDATION_SHARE = 1 / 3
PROBE_SECONDS = 2.0  # steps timed (after two warm-up steps) for a budget's estimate


def step_seconds(
    objectives: Sequence[Objective], device: torch.device, precision: str, seconds: float, batched: bool = True,
    examples: int | None = None,
) -> float:
    """Seconds per training step of ``objectives`` as one population, batched or member by
    member, on batches of their ``batch_size`` (or of ``examples``, for data smaller than a
    batch): the loop's own step, timed over ``seconds``. The objectives' models take Adam
    steps: time copies, or models about to be rebuilt."""
    cost = PopulationCost(objectives, [randomness.generator(device, seed) for seed in range(len(objectives))], batched)
    optimizers = [adam(objective.model, 1e-4) for objective in objectives]
    orders = [torch.Generator().manual_seed(seed) for seed in range(len(objectives))]
    rows = objectives[0].batch_size if examples is None else examples
    batches = [torch.arange(rows, device=device) for _ in objectives]
    cast = autocast(precision, device)
    return seconds_per_call(lambda: train_step(optimizers, cast, lambda: cost(batches, orders)), device, seconds)


def epochs_within(
    budget_seconds: float, seconds_per_step: float, train_examples: int, batch_size: int, valid_examples: int
) -> int:
    """Whole epochs (at least one) whose training steps and per-epoch validation fit the budget."""
    steps = math.ceil(train_examples / batch_size) + VALIDATION_SHARE * math.ceil(valid_examples / batch_size)
    return max(1, math.floor(budget_seconds / (steps * seconds_per_step)))
