"""DIR/plan.json: the cells planned for a benchmark directory, so that any process (a pool
worker, a Slurm array task, ``tagtool benchmark-cell --index I`` in a user's own sbatch
script, ``tagtool status``) can find cell I and its settings from the directory alone.

The plan holds the whole scale (not only its name), the cells in a fixed order, and how the
cells compute (precision, compilation). Each ``tagtool benchmark`` command adds the cells it
was asked for to the end of the list and never reorders it, so an index keeps naming the
same cell however many commands share the directory (the Makefile's table2-cpu runs three).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tagdata.errors import UserError
from tagmodels.benchmark.grid import META, STATE, Cell, open_directory
from tagmodels.benchmark.locks import exclusive
from tagmodels.benchmark.settings import Choices, Scale
from tagmodels.training.runs import read_json, write_json

PLAN = "plan.json"


@dataclass
class Plan:
    """A benchmark directory's cells and how they are computed."""

    scale: Scale
    cells: list[Cell]
    precision: str = "fp32"
    compile: bool = False
    mnist_dir: str | None = None

    def index(self, cell: Cell) -> int:
        """The cell's index in the plan (for ``benchmark-cell --index``)."""
        return self.cells.index(cell)

    def cell(self, index: int) -> Cell:
        """Cell ``index``, or a one-line error naming the valid range."""
        if not 0 <= index < len(self.cells):
            raise UserError(f"--index {index} is out of range: the plan has cells 0 to {len(self.cells) - 1}")
        return self.cells[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": asdict(self.scale),
            "cells": [asdict(cell) for cell in self.cells],
            "precision": self.precision,
            "compile": self.compile,
            "mnist_dir": self.mnist_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> "Plan":
        try:
            held = {f.name: data["scale"][f.name] for f in fields(Scale) if f.name in data["scale"]}
            scale = Scale(**{**held, "choices": Choices(**held.get("choices", {}))})
            cells = [Cell(**cell) for cell in data["cells"]]
            return cls(scale, cells, data["precision"], data["compile"], data.get("mnist_dir"))
        except (KeyError, TypeError) as err:
            raise UserError(f"{source} is not a benchmark plan ({type(err).__name__}: {err})") from None


def plan_path(out: Path) -> Path:
    return Path(out) / PLAN


def read_plan(out: Path | str) -> Plan:
    """The plan of a benchmark directory, or a one-line error saying how to make one."""
    path = plan_path(Path(out))
    if not path.exists():
        raise UserError(f"{out} holds no {PLAN}: plan the grid first with `tagtool benchmark --out {out} --plan-only`")
    return Plan.from_dict(read_json(path), path)


def extend_plan(out: Path, plan: Plan) -> Plan:
    """Open the directory (tagmodels.benchmark.grid.open_directory, which refuses another
    scale) and add ``plan``'s cells to its plan (creating it), keeping the cells it holds in
    their order. The scale's settings, precision and compilation become the latest command's:
    a cell started with other settings is refused when it is run, as in one process. Returns
    the merged plan. Under a lock, so concurrent commands merge too."""
    out = Path(out)
    open_directory(out, plan.scale)
    with exclusive(out / STATE / "plan.lock"):
        path = plan_path(out)
        if path.exists():
            held = Plan.from_dict(read_json(path), path)
            cells = held.cells + [cell for cell in plan.cells if cell not in held.cells]
            plan = Plan(plan.scale, cells, plan.precision, plan.compile, plan.mnist_dir or held.mnist_dir)
        write_json(path, plan.to_dict())
    return plan


def is_benchmark(directory: Path) -> bool:
    """Whether ``directory`` is a benchmark directory: it holds benchmark.json, written before
    any plan (a plan.json alone may be another command's, ``tagtool reproduce``'s)."""
    return (directory / META).exists()
