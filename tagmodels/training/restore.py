"""Put a run's checkpointed parameters into a freshly built model, ready to call.

Both :func:`tagmodels.loading.load_run` (any run) and
:func:`tagmodels.training.grouping.load_tagger` (Tagger runs only) restore through this one
function, so a missing checkpoint reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tagdata.errors import UserError
from tagmodels.training.runs import RunDir


@dataclass
class Run:
    """A trained run: its model (eval mode, on ``device``), config.json and per-epoch history."""

    path: Path
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, Any]]
    device: torch.device


def restore(run: RunDir, config: dict[str, Any], model: nn.Module, device: torch.device, checkpoint: str = "last") -> Run:
    """Load the last (or best) checkpoint into ``model`` and move it to ``device`` in eval mode;
    the history is the per-epoch metrics up to that checkpoint."""
    state = run.load_checkpoint(device, which=checkpoint)
    if state is None and checkpoint == "best" and run.checkpoint_path.exists():
        raise UserError(f"{run.path} has no best.pt: benchmark cells keep only their last checkpoint (and a Tagger "
                        "run stopped before writing best.pt writes it on --resume); use the last checkpoint")
    if state is None:
        raise UserError(f"{run.path} has no {checkpoint} checkpoint yet: train it for at least one epoch")
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return Run(run.path, model, config, state["history"], device)
