"""The best-validation checkpoint (``best.pt``), kept beside the last one.

Which epoch is best is read from the history (the highest ``valid_ami``, say), so it
survives kills and resumes: ``best.pt`` is written after the epoch's ``checkpoint.pt``, so
it is never ahead of the run; when a kill or a full disk comes between the two, the resume
rewrites it from the checkpoint (tagmodels.training.resume.repair_run_files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tagmodels.training.runs import RunDir


@dataclass(frozen=True)
class Selection:
    """The validation figure that picks the best epoch, and whether higher is better."""

    metric: str
    higher_is_better: bool = True

    def best_epoch(self, history: list[dict[str, Any]]) -> int | None:
        """The epoch with the best finite figure (the earliest on ties), or None."""
        scored = [
            (row[self.metric] if self.higher_is_better else -row[self.metric], -row["epoch"], row["epoch"])
            for row in history
            if isinstance(row.get(self.metric), (int, float)) and math.isfinite(row[self.metric])
        ]
        return max(scored)[2] if scored else None


def save_if_best(run: RunDir, selection: Selection | None, history: list[dict[str, Any]], model: torch.nn.Module) -> None:
    """Write best.pt when the epoch just finished (the last row) is the best so far."""
    if selection is None or selection.best_epoch(history) != history[-1]["epoch"]:
        return
    row = history[-1]
    run.save_checkpoint(
        {"model": model.state_dict(), "history": list(history), "metric": selection.metric, "value": row[selection.metric]},
        which="best",
    )
