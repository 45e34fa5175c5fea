"""The plan of ``tagtool reproduce``: every run of the paper's Tables 1 and 2, grouped into
units of work, ordered, timed from the measured speeds and fitted into a budget.

A unit is one configuration with a group of seeds (what a population of models would train
as one batched computation): Table 1's Tagger (BatchNorm) or Tagger* (LayerNorm) on Shapes
with the ``shapes-paper`` preset (Section 3.1; Table 1 reports medians over 20 seeds,
Section 3.2), or one cell of Table 2 without its seed (Section 3.3; 5 seeds), the permuted
columns included (tagmodels.benchmark.grid.table2_cells). Order: Table 1 with all its seeds
and one seed of every Table 2 cell first, so that a short budget already fills both tables,
then Table 2's remaining seeds.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import tagdata
from tagdata.errors import UserError
from tagmodels.benchmark.grid import Cell, table2_cells
from tagmodels.benchmark.settings import Scale, get_scale
from tagmodels.tagger.presets import Preset, get_preset

TABLE1_PRESET = "shapes-paper"
TABLE1_NORMS = ("batch", "layer")  # Tagger and Tagger* (Table 1)
EVAL_ITERATIONS = 5  # Table 1a: trained with 3 iterations, evaluated with 5
PHASE_PROBE = "tagger-unsupervised"  # the probe of the Table 2 Tagger's unsupervised phase


@dataclass(frozen=True)
class ReproduceScale:
    """How big each table's runs are: Table 1's preset overrides and Shapes splits, and
    the Table 2 benchmark scale (tagmodels.benchmark.settings)."""

    name: str
    benchmark: str
    table1_overrides: dict[str, Any] = field(default_factory=dict)
    table1_splits: dict[str, int] | None = None  # None: the Shapes spec's own
    note: str = ""
    probe_seconds: float = 2.0  # of training steps per model kind in the speed probe

    def table1_preset(self, norm: str) -> Preset:
        return get_preset(TABLE1_PRESET).with_overrides(norm=norm, **self.table1_overrides)

    def table2_scale(self) -> Scale:
        return get_scale(self.benchmark)


REPRODUCE_SCALES = {
    "paper": ReproduceScale("paper", "paper", note="the paper's: shapes-paper for 100 epochs, Table 2 at the paper's widths and epochs"),
    "cpu": ReproduceScale(
        "cpu", "cpu", {"epochs": 10},
        note="CPU-sized, NOT the paper's: shapes-paper for 10 epochs, Table 2 at the benchmark's cpu scale",
    ),
    "tiny": ReproduceScale(
        "tiny", "tiny", {"widths": (32, 16, 8), "epochs": 1, "valid_examples": 50},
        {"train": 200, "valid": 50, "test": 100, "single": 0},
        note="a check of the machinery in seconds (CI), NOT comparable with the paper", probe_seconds=0.05,
    ),
}


def get_reproduce_scale(name: str) -> ReproduceScale:
    """A scale by name, naming the valid ones when it is unknown."""
    try:
        return REPRODUCE_SCALES[name]
    except KeyError:
        raise UserError(f"unknown scale {name!r}; choose one of {', '.join(REPRODUCE_SCALES)}") from None


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_budget(text: str) -> float:
    """Seconds of a budget written as 90s, 10m, 2h or 1.5h (a bare number is seconds)."""
    match = _BUDGET.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--budget {text!r} is not a duration: write it as 90s, 10m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass(frozen=True)
class Unit:
    """One configuration and the seeds it trains as one group (the population seam)."""

    table: str  # "table1" or "table2"
    norm: str | None = None  # Table 1
    cell: Cell | None = None  # Table 2: the cell of seed 0, standing for its configuration
    seeds: tuple[int, ...] = ()

    def label(self) -> str:
        """The configuration's name, without a seed."""
        return f"{TABLE1_PRESET}-{self.norm}" if self.cell is None else self.seed_cell(0).name.rsplit("_seed", 1)[0]

    def run_name(self, seed: int) -> str:
        """The directory name of one seed's run."""
        if self.cell is None:
            return f"{TABLE1_PRESET}-{self.norm}_seed{seed}"
        return self.seed_cell(seed).name

    def seed_cell(self, seed: int) -> Cell:
        assert self.cell is not None, "Table 1 units have no cell"
        return Cell(self.cell.method, self.cell.dataset, self.cell.labels, seed, self.cell.permuted)

    def model_kind(self) -> str:
        """What the speed probe times for this unit: Table 1's Tagger of one norm, or a Table 2 method at a budget."""
        return f"table1-{self.norm}" if self.cell is None else f"{self.cell.method}-{self.cell.labels}"

    def probe(self, kind: str | None = None) -> str:
        """The key of the speed probe that times one step of ``kind`` (default: this unit's
        model) in a population of this unit's seeds."""
        return probe_key(kind or self.model_kind(), len(self.seeds))


def probe_key(kind: str, members: int) -> str:
    """'fc-mlp-1000 x4': the probe of a model kind training ``members`` seeds as one population."""
    return f"{kind} x{members}"


def plan_units(seeds_table1: int, seeds_table2: int) -> list[Unit]:
    """Table 1 (all seeds) and one seed of every Table 2 cell, then Table 2's other seeds."""
    units = [Unit("table1", norm=norm, seeds=tuple(range(seeds_table1))) for norm in TABLE1_NORMS]
    first = table2_cells(1)
    units += [Unit("table2", cell=cell, seeds=(0,)) for cell in first]
    if seeds_table2 > 1:
        units += [Unit("table2", cell=cell, seeds=tuple(range(1, seeds_table2))) for cell in first]
    return units


def table2_train_examples(scale: Scale, dataset: str) -> int:
    """Training images of a Table 2 dataset at ``scale``."""
    return (scale.splits or tagdata.resolve_spec(dataset).splits)["train"]


def uses_every_image(method: str) -> bool:
    """Whether a model steps through every image with 1,000 labels (the semi-supervised ones)."""
    return method in ("fc-ladder", "tagger")


class Estimator:
    """Seconds per run from the probed samples/s: epochs x examples per epoch / samples/s of
    its population (all members' samples: a run's share of the population's time), plus, for
    the first Table 2 Tagger cell of a (dataset, seed, pixel order), its shared unsupervised phase."""

    def __init__(self, scale: ReproduceScale, table1_train: int, speeds: dict[str, float]) -> None:
        self.scale, self.table1_train, self.speeds = scale, table1_train, speeds
        self._phases: set[tuple[str, int, bool]] = set()

    def seconds(self, unit: Unit, seed: int) -> float:
        if unit.cell is None:
            epochs = self.scale.table1_preset(str(unit.norm)).epochs
            return epochs * self.table1_train / self.speeds[unit.probe()]
        bench = self.scale.table2_scale()
        cell = unit.seed_cell(seed)
        n_train = table2_train_examples(bench, cell.dataset)
        settings = bench.settings(cell.method, cell.labels)
        rows = n_train if cell.labels == "50000" or uses_every_image(cell.method) else min(n_train, int(cell.labels))
        seconds = settings["epochs"] * rows / self.speeds[unit.probe()]
        phase = (cell.dataset, seed, cell.permuted)
        if cell.method == "tagger" and phase not in self._phases:
            self._phases.add(phase)
            preset = get_preset(bench.tagger_preset).with_overrides(**bench.tagger_overrides)
            seconds += preset.epochs * n_train / self.speeds[unit.probe(PHASE_PROBE)]
        return seconds


@dataclass
class PlannedRun:
    """One seed of one unit, in the order it will run, with its estimate and whether it fits."""

    unit: int  # index into the plan's units
    table: str
    name: str
    seed: int
    estimated_seconds: float
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "estimated_seconds": round(self.estimated_seconds, 2)}


def fit_budget(units: list[Unit], estimator: Estimator, budget_seconds: float,
               done: set[str] = frozenset()) -> list[PlannedRun]:
    """Every run in order, each marked as fitting while the estimates so far (of the runs not
    done before) stay within the budget; a run that would not fit is skipped, and so is every
    later one of its unit, but a shorter run further on may still fit."""
    runs, spent = [], 0.0
    for index, unit in enumerate(units):
        blocked = False
        for seed in unit.seeds:
            name = unit.run_name(seed)
            estimate = estimator.seconds(unit, seed)
            cost = 0.0 if name in done else estimate
            fits = not blocked and spent + cost <= budget_seconds
            blocked = blocked or not fits
            spent += cost if fits else 0.0
            runs.append(PlannedRun(index, unit.table, name, seed, estimate, fits))
    return runs
