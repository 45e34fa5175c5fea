"""The model zoo: every model by name, and trained runs loaded back as ready models.

``create("tagger" | "fc-mlp" | "fc-ladder" | "convnet", ...)`` builds a fresh model; the CLI
and the Table 2 benchmark build theirs through it, so a name means the same thing
everywhere. ``load_run(path)`` rebuilds the model a run directory describes (a
``tagtool train`` run or a benchmark cell), loads its last checkpoint and puts it in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from tagdata.errors import InvalidArgument, UserError
from tagmodels.baselines.classifiers import FCMLP, ModelC
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.device import resolve_device
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.runs import RunDir


def _tagger(**config: Any) -> Tagger:
    """Tagger from TaggerConfig fields (``n_inputs`` required)."""
    if "widths" in config:
        config["widths"] = tuple(config["widths"])
    return Tagger(TaggerConfig(**config))


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo: its name, where the paper describes it, and how to build it."""

    name: str
    summary: str
    build: Callable[..., nn.Module]


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("tagger", "Tagger: TAG with a Ladder network (Section 2); kwargs: TaggerConfig fields", _tagger),
        ModelEntry("fc-mlp", "FC MLP baseline (Section 3.3); kwargs: n_inputs, widths", FCMLP),
        ModelEntry(
            "fc-ladder",
            "FC Ladder baseline (Section 3.3, Rasmus et al. 2015); kwargs: n_inputs, widths, noise_std, denoising_weights",
            FCLadder,
        ),
        ModelEntry("convnet", "Model-C ConvNet baseline (Section 3.3); kwargs: image_size, channels", ModelC),
    )
}


SIZES = ("n_inputs", "widths", "image_size", "channels")  # arguments that count units or pixels


def _check_sizes(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a size below 1 (``n_inputs=0``) by name, before a layer divides by it."""
    for key in SIZES:
        if key not in kwargs:
            continue
        value = kwargs[key]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items or not all(isinstance(item, int) and not isinstance(item, bool) and item >= 1 for item in items):
            raise InvalidArgument(f"create({name!r}): {key} must be whole numbers of at least 1, got {value!r}")


def create(name: str, **kwargs: Any) -> nn.Module:
    """A fresh model of the zoo by name, e.g. ``create("tagger", n_inputs=400, norm="layer")``;
    an unknown name or a size below 1 raises :class:`tagdata.errors.InvalidArgument` (a ValueError)."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise InvalidArgument(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    _check_sizes(name, kwargs)
    return entry.build(**kwargs)


@dataclass
class Run:
    """A trained run: its model (eval mode, on ``device``), config.json and per-epoch history."""

    path: Path
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, Any]]
    device: torch.device


def load_run(path: str | Path, device: str | torch.device | None = None, checkpoint: str = "last") -> Run:
    """Load a run directory's model from its last (or best-validation) checkpoint, ready to
    call on a batch; ``history`` is the per-epoch metrics up to that checkpoint."""
    run = RunDir(path)
    config = run.config()
    device = resolve_device(None if device is None else str(device))
    model = _rebuild(run, config)
    state = run.load_checkpoint(device, which=checkpoint)
    if state is None and checkpoint == "best" and run.checkpoint_path.exists():
        raise UserError(f"{run.path} has no best.pt: benchmark cells keep only their last checkpoint (and a Tagger "
                        "run stopped before writing best.pt writes it on --resume); use the last checkpoint")
    if state is None:
        raise UserError(f"{run.path} has no {checkpoint} checkpoint yet: train it for at least one epoch")
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return Run(run.path, model, config, state["history"], device)


def _rebuild(run: RunDir, config: dict[str, Any]) -> nn.Module:
    """The untrained model a run's config.json describes."""
    if isinstance(config, dict) and config.get("model") == "tagger":
        from tagmodels.training.grouping import check_run_config

        check_run_config(config, run.config_path)
        return Tagger(TaggerConfig.from_dict(config["tagger"]))
    if isinstance(config, dict) and "cell" in config:  # a Table 2 benchmark cell (tagmodels.benchmark.grid)
        from tagmodels.benchmark.grid import rebuild_cell_model

        return rebuild_cell_model(run, config)
    raise UserError(f"{run.path}/config.json describes no model this toolkit knows")
