"""``tagtool reproduce``: every run of the paper's Tables 1 and 2 in one output folder, planned
against a budget (tagmodels.experiments.reproduce_plan), run in order and resumably.

Layout of the output folder:

    plan.json                           the units, each run's estimate and whether it fits
    table1/shapes.h5                    the Shapes set, made on first use
    table1/<run>/                       one training run per seed (tagmodels.training.runs)
    table1/evaluations/<run>.json       its Table 1a record (as ``tagtool evaluate --json``)
    table2/                             a benchmark directory (tagmodels.benchmark.grid)
    table1.md, table2.md                the tables beside the paper's figures
    report.md, report.json              device, wall time, samples/s per model, runs done,
                                        run now, skipped by the budget, or left unfinished

A run whose result exists is kept; a run with a checkpoint resumes from it. The budget
decides which runs start: a run starts only while its estimate fits in what is left; and
it stops the training that is under way after the epoch that ends past it (such runs are
"unfinished" and resume on the next command).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import tagdata
from tagdata.atomic import atomic_write
from tagdata.errors import UserError
from tagmodels.benchmark.executors import attempt_seeds, planned_benchmark, render_table
from tagmodels.benchmark.grid import Benchmark
from tagmodels.benchmark.plan import Plan, extend_plan
from tagmodels.benchmark.table import load_results
from tagmodels.benchmark.table import render_table as table2_text
from tagmodels.experiments import table1
from tagmodels.experiments.reproduce_plan import (
    EVAL_ITERATIONS,
    TABLE1_PRESET,
    Estimator,
    PlannedRun,
    ReproduceScale,
    Unit,
    fit_budget,
    plan_units,
)
from tagmodels.experiments.reproduce_report import write_report
from tagmodels.experiments.speed_probe import probe_speeds
from tagmodels.training.evaluate_run import evaluate_run
from tagmodels.training.grouping import new_run_config, train_taggers
from tagmodels.training.runs import RunDir, read_json, write_json

PLAN = "plan.json"


@dataclass
class Reproduction:
    """One output folder's runs on one device."""

    out: Path
    scale: ReproduceScale
    device: torch.device
    precision: str
    threads: int | str | None
    mnist_dir: str | None
    log: Callable[[str], None] = print
    progress: bool = False
    outcomes: dict[str, str] = field(default_factory=dict)  # run name -> done before / ran / skipped
    _bench: Benchmark | None = None

    @property
    def table1_dir(self) -> Path:
        return self.out / "table1"

    def evaluation_path(self, name: str) -> Path:
        return self.table1_dir / "evaluations" / f"{name}.json"

    def run_dir(self, unit: Unit, seed: int) -> Path:
        """One seed's training run: OUT/table1/<run>, or the cell's OUT/table2/runs/<cell>."""
        if unit.cell is None:
            return self.table1_dir / unit.run_name(seed)
        return self.out / "table2" / "runs" / unit.run_name(seed)

    def done(self, unit: Unit, seed: int) -> bool:
        """Whether a run's result is already there."""
        if unit.cell is None:
            return self.evaluation_path(unit.run_name(seed)).exists()
        return (self.run_dir(unit, seed) / "result.json").exists()

    def started(self, unit: Unit, seed: int) -> bool:
        """Whether a run not done has a run directory (stopped part-way: it resumes)."""
        return (self.run_dir(unit, seed) / "config.json").exists()

    # ------------------------------------------------------------------ Table 1

    def shapes_path(self) -> Path:
        """The Shapes file of Table 1, made on first use."""
        path = self.table1_dir / "shapes.h5"
        if not path.exists():
            spec = tagdata.resolve_spec("shapes")
            if self.scale.table1_splits is not None:
                spec = tagdata.with_overrides(spec, **self.scale.table1_splits)
            self.log(f"making {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tagdata.make_dataset(spec, path)
        return path

    def table1_runs(self, unit: Unit, seeds: list[int], deadline: float | None = None) -> list[int]:
        """Train (or resume) a Table 1 unit's seeds as one population until ``deadline`` at
        most, then write each finished run's Table 1a record; returns the seeds finished. A
        seed that diverged is reported and left without a record."""
        runs, configs = [], []
        for seed in seeds:
            run = RunDir(self.run_dir(unit, seed))
            if run.config_path.exists():
                config = run.config()
            else:
                overrides = {"norm": unit.norm, **self.scale.table1_overrides}
                config = new_run_config(TABLE1_PRESET, str(self.shapes_path()), seed, self.device, self.precision,
                                        **overrides)
                run.path.parent.mkdir(parents=True, exist_ok=True)
                run.create(config)
            runs.append(run)
            configs.append(config)
        try:
            trained = train_taggers(runs, configs, self.device, resume=True, progress=self.progress,
                                    adapt_threads=self.threads in (None, "auto"), deadline=deadline)
        finally:
            for run in runs:
                run.release()
        finished = []
        for seed, run, (_, outcome) in zip(seeds, runs, trained):
            if outcome.diverged is not None:
                self.log(f"{unit.run_name(seed)}: {outcome.diverged}")
                continue
            if outcome.cut:
                continue
            record = evaluate_run(str(run.path), self.device, iterations=EVAL_ITERATIONS).record
            self.evaluation_path(unit.run_name(seed)).parent.mkdir(parents=True, exist_ok=True)
            write_json(self.evaluation_path(unit.run_name(seed)), record)
            finished.append(seed)
        return finished

    # ------------------------------------------------------------------ the seam

    def benchmark(self) -> Benchmark:
        """The Table 2 benchmark of OUT/table2, opened once (it keeps the splits it loaded)."""
        if self._bench is None:
            _, self._bench = planned_benchmark(self.out / "table2", "inline", str(self.device), self.threads,
                                               progress=self.progress, log=self.log)
        return self._bench

    def train_seeds(self, unit: Unit, seeds: list[int], deadline: float | None = None) -> list[int]:
        """Every seed of one configuration, as one population until ``deadline`` at most:
        Table 1's runs, or a Table 2 cell's seeds through the grid (its locks and records per
        cell). Returns the seeds that finished."""
        if unit.cell is None:
            return self.table1_runs(unit, seeds, deadline)
        bench = self.benchmark()
        finished = []
        for seed, outcome in zip(seeds, attempt_seeds(bench, [unit.seed_cell(seed) for seed in seeds], deadline)):
            if outcome.state == "elsewhere":
                raise UserError(f"{unit.run_name(seed)} is being run by another process ({outcome.detail})")
            if outcome.state in ("ran", "skipped"):
                finished.append(seed)
        render_table(bench.out, bench.scale)
        return finished

    # ------------------------------------------------------------------ the whole

    def plan(self, units: list[Unit], speeds: dict[str, float], budget: float) -> list[PlannedRun]:
        """Each run's estimate and whether it fits, written to plan.json."""
        done = {unit.run_name(seed) for unit in units for seed in unit.seeds if self.done(unit, seed)}
        with tagdata.open_dataset(self.shapes_path()) as file:
            table1_train = len(file["train"])
        runs = fit_budget(units, Estimator(self.scale, table1_train, speeds), budget, done)
        write_json(self.out / PLAN, {
            "scale": self.scale.name, "budget_seconds": budget, "samples_per_second": speeds,
            "units": [{"table": u.table, "config": u.label(), "seeds": list(u.seeds)} for u in units],
            "runs": [run.to_dict() | {"done_before": run.name in done} for run in runs],
        })
        return runs

    def run(self, units: list[Unit], runs: list[PlannedRun], budget: float) -> None:
        """The planned runs in order while each next group's estimate fits in the time left."""
        started = time.perf_counter()
        for index, unit in enumerate(units):
            mine = [run for run in runs if run.unit == index]
            todo = []
            for run in mine:
                if self.done(unit, run.seed):
                    self.outcomes[run.name] = "done before"
                else:
                    todo.append(run)
            left = budget - (time.perf_counter() - started)
            seeds, spent = [], 0.0
            for run in todo:  # the longest prefix of the pending seeds that fits
                if not run.fits or spent + run.estimated_seconds > left:
                    break
                seeds.append(run.seed)
                spent += run.estimated_seconds
            for run in todo[len(seeds):]:
                self.outcomes[run.name] = "unfinished (resumes)" if self.started(unit, run.seed) else "skipped (budget)"
            if seeds:
                self.log(f"{unit.label()}: seeds {seeds} (about {spent:.0f} s estimated)")
                finished = self.train_seeds(unit, seeds, deadline=started + budget)
                for seed in seeds:
                    self.outcomes[unit.run_name(seed)] = "ran" if seed in finished else "unfinished (resumes)"

    def write_tables(self) -> list[str]:
        """table1.md and table2.md from every result so far; the names of those written."""
        written = []
        evaluations = sorted((self.table1_dir / "evaluations").glob("*.json"))
        if evaluations:
            table = table1.aggregate(evaluations)
            table["inputs"] = [str(path.relative_to(self.out)) for path in evaluations]
            text = table1.render(table)
            atomic_write(self.out / "table1.md", lambda tmp: tmp.write_text(text))
            written.append("table1.md")
        bench = self.out / "table2"
        results = load_results(bench)
        if results:
            text = table2_text(results, self.scale.table2_scale())
            atomic_write(self.out / "table2.md", lambda tmp: tmp.write_text(text))
            written.append("table2.md")
        return written


def open_table2(out: Path, scale: ReproduceScale, units: list[Unit], precision: str, mnist_dir: str | None) -> None:
    """Plan every Table 2 cell in OUT/table2/plan.json (so that `tagtool status` and the
    benchmark's executors find them)."""
    cells = [unit.seed_cell(seed) for unit in units if unit.cell is not None for seed in unit.seeds]
    (out / "table2").mkdir(parents=True, exist_ok=True)
    extend_plan(out / "table2", Plan(scale.table2_scale(), cells, precision, False, mnist_dir))


def reproduce(out: Path, scale: ReproduceScale, device: torch.device, precision: str, threads: int | str | None,
              budget: float, seeds_table1: int, seeds_table2: int, mnist_dir: str | None, probe_seconds: float,
              plan_only: bool = False, progress: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, probe, run and report (see the module's note); returns the report."""
    started = time.perf_counter()
    held = read_json(out / PLAN) if (out / PLAN).exists() else None
    if isinstance(held, dict) and held.get("scale") not in (None, scale.name):
        raise UserError(f"{out} holds a {held['scale']}-scale reproduction; use another --out for --scale {scale.name}")
    work = Reproduction(out, scale, device, precision, threads, mnist_dir, log, progress)
    units = plan_units(seeds_table1, seeds_table2)
    open_table2(out, scale, units, precision, mnist_dir)
    log(f"speed probe ({probe_seconds:g} s per model kind and population size on {device}, {precision}):")
    speeds = probe_speeds(scale, units, device, precision, probe_seconds, log)
    runs = work.plan(units, speeds, budget)
    _log_plan(units, runs, budget, log)
    if not plan_only:
        work.run(units, runs, budget - (time.perf_counter() - started))
    tables = work.write_tables()
    return write_report(out, scale.name, device, budget, speeds, runs, work.outcomes, tables,
                        time.perf_counter() - started, plan_only)


def _log_plan(units: list[Unit], runs: list[PlannedRun], budget: float, log: Callable[[str], None]) -> None:
    """What fits, in order, with the estimates: one line per unit of work."""
    fitting = [run for run in runs if run.fits]
    log(f"plan: {len(fitting)} of {len(runs)} runs fit in the budget of {budget:.0f} s (about "
        f"{sum(run.estimated_seconds for run in fitting):.0f} s of training estimated; all runs: "
        f"{sum(run.estimated_seconds for run in runs):.0f} s), in this order:")
    for index, unit in enumerate(units):
        mine = [run for run in runs if run.unit == index]
        fit = [run.seed for run in mine if run.fits]
        log(f"  {index + 1:3d}  {unit.table}  {unit.label():<44} seeds {_seeds(unit.seeds)}: "
            f"{len(fit)} fit, {sum(run.estimated_seconds for run in mine):8.1f} s")


def _seeds(seeds: tuple[int, ...]) -> str:
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
