"""Stopping at the first non-finite cost, so that a diverged run keeps its last good checkpoint
instead of training on (and saving) NaN parameters."""

from __future__ import annotations

import math

from tagdata.errors import UserError
from tagmodels.training.runs import RunDir


class TrainingDiverged(UserError):
    """The training cost became NaN or infinite."""


def check_finite(cost: float, epoch: int, step: int, run: RunDir, lr: float) -> None:
    """Raise :class:`TrainingDiverged` when ``cost`` (of ``step`` in 1-based ``epoch``) is not finite."""
    if math.isfinite(cost):
        return
    kept = (
        f"{run.path} keeps the checkpoint of epoch {epoch - 1}" if epoch > 1
        else "no epoch had finished, so there is no checkpoint to keep"
    )
    raise TrainingDiverged(
        f"training diverged: the cost became {cost} at epoch {epoch}, step {step} (lr {lr:g}); "
        f"{kept}; train again with a lower --lr"
    )
