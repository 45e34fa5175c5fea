"""The speed probe of ``tagtool reproduce``: a few seconds of training steps of every model
kind the plan trains, on the device and in the precision the runs will use, as samples per
second (the training loop's own step: tagmodels.training.step.train_step, timed by
tagmodels.speed.timing). The plan's estimates divide each run's work by these."""

from __future__ import annotations

from typing import Callable

import torch

from tagmodels.baselines.classifiers import N_CLASSES
from tagmodels.benchmark.grid import build_classifier
from tagmodels.benchmark.settings import BUDGETS, METHODS
from tagmodels.experiments.reproduce_plan import PHASE_PROBE, TABLE1_NORMS, ReproduceScale, uses_every_image
from tagmodels.speed.timing import seconds_per_call
from tagmodels.tagger.model import Tagger
from tagmodels.tagger.presets import Preset, get_preset
from tagmodels.training.data import SplitTensors
from tagmodels.training.grouping import tagger_config
from tagmodels.training.loop import adam
from tagmodels.training.step import train_step
from tagmodels.training.precision import autocast

SHAPES_INPUTS, TEXTURE_SIDE = 400, 28  # 20x20 Shapes, 28x28 TextureMNIST


def _rate(model: torch.nn.Module, cost: Callable[[], torch.Tensor], rows: int, lr: float, device: torch.device,
          precision: str, seconds: float) -> float:
    """Examples of an epoch per second over ``seconds`` of steps (``rows`` examples a step)."""
    optimizer, cast = adam(model, lr), autocast(precision, device)
    return rows / seconds_per_call(lambda: train_step([optimizer], cast, cost), device, min_seconds=seconds)


def _tagger(preset: Preset, n_inputs: int, kind: str, device: torch.device) -> Tagger:
    return Tagger(tagger_config(preset, n_inputs, kind)).to(device)


def _tagger_rate(preset: Preset, n_inputs: int, kind: str, device: torch.device, precision: str,
                 seconds: float) -> float:
    model = _tagger(preset, n_inputs, kind, device)
    x = torch.rand(preset.batch_size, n_inputs, device=device)
    if kind == "binary":
        x = (x < preset.data_mean).float()
    return _rate(model, lambda: model.training_cost(model(x, preset.groups, preset.iterations)), preset.batch_size,
                 preset.lr, device, precision, seconds)


def probe_speeds(scale: ReproduceScale, device: torch.device, precision: str, seconds: float,
                 log: Callable[[str], None] = print) -> dict[str, float]:
    """Samples/s per probe key (tagmodels.experiments.reproduce_plan.Unit.probe)."""
    torch.manual_seed(0)
    speeds: dict[str, float] = {}

    def record(key: str, value: float) -> None:
        speeds[key] = value
        log(f"  {key:>22}: {value:,.0f} samples/s")

    for norm in TABLE1_NORMS:
        record(f"table1-{norm}", _tagger_rate(scale.table1_preset(norm), SHAPES_INPUTS, "binary", device,
                                              precision, seconds))
    bench = scale.table2_scale()
    phase = get_preset(bench.tagger_preset).with_overrides(**bench.tagger_overrides)
    n_inputs = TEXTURE_SIDE * TEXTURE_SIDE
    record(PHASE_PROBE, _tagger_rate(phase, n_inputs, "continuous", device, precision, seconds))
    for method in METHODS:
        for labels in BUDGETS:
            settings = bench.settings(method, labels)
            batch = settings["batch_size"]
            rows = 2 * batch if labels == "1000" and uses_every_image(method) else batch  # + a labelled batch
            images = torch.rand(rows, 1, TEXTURE_SIDE, TEXTURE_SIDE, device=device)
            like = SplitTensors("texture-mnist", images, torch.zeros(rows, n_inputs, device=device),
                                torch.zeros(rows, 2, dtype=torch.long, device=device))
            tagger = _tagger(phase, n_inputs, "continuous", device) if method == "tagger" else None
            model = build_classifier(method, settings, like, tagger).to(device)
            targets = torch.full((batch, N_CLASSES), 1 / N_CLASSES, device=device)
            x = like.x
            record(f"{method}-{labels}", _rate(model, lambda: model.cost(x, targets), batch, settings["lr"],
                                               device, precision, seconds))
    return speeds
