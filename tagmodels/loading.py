"""Trained runs loaded back as ready models: ``load_run(path)`` for a ``tagtool train`` run or a
Table 2 benchmark cell.

It sits above the training code and the benchmark grid, which each know how to rebuild their
own runs' models, so that the zoo below them stays a plain registry of model builders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tagdata.errors import UserError
from tagmodels.benchmark.grid import rebuild_cell_model
from tagmodels.device import resolve_device
from tagmodels.training.grouping import rebuild_tagger
from tagmodels.training.restore import Run, restore
from tagmodels.training.runs import RunDir


def load_run(path: str | Path, device: str | torch.device | None = None, checkpoint: str = "last") -> Run:
    """Load a run directory's model from its last (or best-validation) checkpoint, ready to
    call on a batch; ``history`` is the per-epoch metrics up to that checkpoint."""
    run = RunDir(path)
    config = run.config()
    device = resolve_device(None if device is None else str(device))
    return restore(run, config, _rebuild(run, config), device, checkpoint)


def _rebuild(run: RunDir, config: dict[str, Any]) -> nn.Module:
    """The untrained model a run's config.json describes."""
    if isinstance(config, dict) and config.get("model") == "tagger":
        return rebuild_tagger(run, config)
    if isinstance(config, dict) and "cell" in config:  # a Table 2 benchmark cell
        return rebuild_cell_model(run, config)
    raise UserError(f"{run.path}/config.json describes no model this toolkit knows")
