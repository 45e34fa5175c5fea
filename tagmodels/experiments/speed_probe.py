"""The speed probe of ``tagtool reproduce``: a few seconds of training steps of every model
kind the plan trains, in populations of as many seeds as its units train together, on the
device and in the precision the runs will use, as samples per second of all members (the
training loop's own population step, timed by tagmodels.training.budget.step_seconds). The
plan's estimates divide each run's work by these."""

from __future__ import annotations

from typing import Callable

import torch

from tagmodels.baselines.classifiers import N_CLASSES
from tagmodels.benchmark.grid import build_classifier
from tagmodels.benchmark.settings import BUDGETS, METHODS
from tagmodels.experiments.reproduce_plan import (
    PHASE_PROBE, TABLE1_NORMS, ReproduceScale, Unit, probe_key, uses_every_image,
)
from tagmodels.tagger.model import Tagger
from tagmodels.tagger.presets import Preset, get_preset
from tagmodels.training.budget import step_seconds
from tagmodels.training.data import SplitTensors
from tagmodels.training.grouping import tagger_config
from tagmodels.training.step import batched_on

SHAPES_INPUTS, TEXTURE_SIDE = 400, 28  # 20x20 Shapes, 28x28 TextureMNIST


class _FixedBatch:
    """An objective that steps on one batch of ``batch_size`` examples again and again: what the probe times."""

    def __init__(self, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], cost: Callable[..., torch.Tensor],
                 batch_size: int) -> None:
        self.model, self._inputs, self._cost, self.batch_size = model, inputs, cost, batch_size

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return self._inputs

    def cost(self, model: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        return self._cost(model, *inputs)

    def validate(self) -> dict[str, float]:
        return {}


def _rate(build: Callable[[], torch.nn.Module], inputs: tuple[torch.Tensor, ...], cost: Callable[..., torch.Tensor],
          rows: int, members: int, device: torch.device, precision: str, seconds: float) -> float:
    """Examples of an epoch per second, summed over a population of ``members`` fresh models
    from ``build`` (``rows`` examples a step each), over ``seconds`` of steps."""
    objectives = [_FixedBatch(build(), inputs, cost, rows) for _ in range(members)]
    return members * rows / step_seconds(objectives, device, precision, seconds, batched_on(device))


def _tagger(preset: Preset, n_inputs: int, kind: str, device: torch.device) -> Tagger:
    return Tagger(tagger_config(preset, n_inputs, kind)).to(device)


def _tagger_rate(preset: Preset, n_inputs: int, kind: str, members: int, device: torch.device, precision: str,
                 seconds: float) -> float:
    x = torch.rand(preset.batch_size, n_inputs, device=device)
    if kind == "binary":
        x = (x < preset.data_mean).float()
    return _rate(lambda: _tagger(preset, n_inputs, kind, device), (x,),
                 lambda model, x: model.training_cost(model(x, preset.groups, preset.iterations)),
                 preset.batch_size, members, device, precision, seconds)


def probe_speeds(scale: ReproduceScale, units: list[Unit], device: torch.device, precision: str, seconds: float,
                 log: Callable[[str], None] = print) -> dict[str, float]:
    """Samples/s per probe key (:meth:`Unit.probe`): every model kind the units train, at each
    population size they train it in."""
    torch.manual_seed(0)
    sizes: dict[str, set[int]] = {}
    for unit in units:
        sizes.setdefault(unit.model_kind(), set()).add(len(unit.seeds))
        if unit.cell is not None and unit.cell.method == "tagger":
            sizes.setdefault(PHASE_PROBE, set()).add(len(unit.seeds))
    speeds: dict[str, float] = {}

    def record(kind: str, rate: Callable[[int], float]) -> None:
        for members in sorted(sizes.get(kind, ())):
            key = probe_key(kind, members)
            speeds[key] = rate(members)
            log(f"  {key:>26}: {speeds[key]:,.0f} samples/s")

    for norm in TABLE1_NORMS:
        preset = scale.table1_preset(norm)
        record(f"table1-{norm}", lambda members: _tagger_rate(preset, SHAPES_INPUTS, "binary", members, device,
                                                              precision, seconds))
    bench = scale.table2_scale()
    phase = get_preset(bench.tagger_preset).with_overrides(**bench.tagger_overrides)
    n_inputs = TEXTURE_SIDE * TEXTURE_SIDE
    record(PHASE_PROBE, lambda members: _tagger_rate(phase, n_inputs, "continuous", members, device, precision,
                                                     seconds))
    for method in METHODS:
        for labels in BUDGETS:
            settings = bench.settings(method, labels)
            batch = settings["batch_size"]
            rows = 2 * batch if labels == "1000" and uses_every_image(method) else batch  # + a labelled batch
            images = torch.rand(rows, 1, TEXTURE_SIDE, TEXTURE_SIDE, device=device)
            like = SplitTensors("texture-mnist", images, torch.zeros(rows, n_inputs, device=device),
                                torch.zeros(rows, 2, dtype=torch.long, device=device))
            tagger = _tagger(phase, n_inputs, "continuous", device) if method == "tagger" else None
            targets = torch.full((batch, N_CLASSES), 1 / N_CLASSES, device=device)

            def build(method=method, settings=settings, like=like, tagger=tagger) -> torch.nn.Module:
                return build_classifier(method, settings, like, tagger).to(device)

            record(f"{method}-{labels}", lambda members, build=build, x=like.x, targets=targets, batch=batch:
                   _rate(build, (x, targets), lambda model, x, targets: model.cost(x, targets), batch, members,
                         device, precision, seconds))
    return speeds
