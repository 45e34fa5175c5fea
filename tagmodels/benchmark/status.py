"""``tagtool status DIR``: where a grid (or any folder of training runs) stands.

For a benchmark directory, each cell of the plan (and any run already under runs/) is
done, running (a process holds its lock: which executor, host, job and device), failed (the
last error line its process recorded) or waiting (with the epoch it resumes at). Epochs count
a Tagger cell's unsupervised phase too. The time left is each cell's remaining epochs at the
seconds per epoch measured so far: its own, else the mean of the cells of the same method and
label budget, else unknown. For another folder (``make table1``'s, say), every training run
below it with its epochs done of planned and the time left at its own speed, and the cells of
any benchmark directory inside it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tagmodels.benchmark.executors import cell_lock, describe_holder, error_record
from tagmodels.benchmark.grid import RESULT, Cell, unsupervised_run
from tagmodels.benchmark.locks import held, holder
from tagmodels.benchmark.plan import PLAN, is_benchmark, read_plan
from tagmodels.benchmark.table import read_result
from tagmodels.tagger.presets import get_preset
from tagmodels.training.runs import RunDir, read_json


@dataclass
class Row:
    """One cell or run of the view."""

    name: str
    state: str  # done, running, failed, waiting (cells); done, incomplete (plain runs)
    done: int  # epochs trained
    planned: int | None
    seconds_left: float | None
    detail: str = ""


def _seconds(history: list[dict[str, Any]]) -> float | None:
    """Mean seconds per epoch of a history (None before the first epoch)."""
    values = [row["seconds"] for row in history if isinstance(row.get("seconds"), (int, float))]
    return statistics.fmean(values) if values else None


def _phase_epochs(settings: dict[str, Any]) -> int:
    """Epochs of the Tagger's unsupervised phase a scale plans."""
    return get_preset(settings["preset"]).with_overrides(**settings["overrides"]).epochs


def benchmark_rows(out: Path) -> list[Row]:
    """Every planned (or already started) cell of a benchmark directory."""
    plan = read_plan(out) if (out / PLAN).exists() else None
    cells = list(plan.cells) if plan else []
    for directory in sorted(path for path in out.glob("runs/*") if path.is_dir()):
        cell = _started_cell(directory)
        if cell is not None and cell not in cells:
            cells.append(cell)
    runs = {cell: RunDir(out / "runs" / cell.name) for cell in cells}
    histories = {cell: run.history() for cell, run in runs.items()}
    phases = {cell: unsupervised_run(out, cell).history() for cell in cells if cell.method == "tagger"}
    # Seconds per epoch measured per (method, label budget), and for the unsupervised phase.
    speeds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cell, history in histories.items():
        if (speed := _seconds(history)) is not None:
            speeds[(cell.method, cell.labels)].append(speed)
    phase_speeds = [s for s in (_seconds(h) for h in phases.values()) if s is not None]

    rows = []
    for cell in cells:
        run, history = runs[cell], histories[cell]
        settings = plan.scale.settings(cell.method, cell.labels) if plan else (
            run.config()["settings"] if run.config_path.exists() else None)
        planned = settings["epochs"] if settings else None
        done = len(history)
        speed = _seconds(history) or (statistics.fmean(speeds[(cell.method, cell.labels)]) if speeds[(cell.method, cell.labels)] else None)
        left = None if planned is None or speed is None else max(0, planned - done) * speed
        if cell.method == "tagger":
            phase = phases[cell]
            phase_planned = _phase_epochs(plan.scale.tagger_unsupervised()) if plan else None
            phase_speed = _seconds(phase) or (statistics.fmean(phase_speeds) if phase_speeds else None)
            done += len(phase)
            planned = None if planned is None or phase_planned is None else planned + phase_planned
            if left is not None:
                phase_left = max(0, (phase_planned or 0) - len(phase))
                left = None if phase_left and phase_speed is None else left + phase_left * (phase_speed or 0)
        rows.append(_cell_row(out, cell, done, planned, left, run, len(history)))
    return rows


def _started_cell(directory: Path) -> Cell | None:
    """The cell of a run under runs/ (started before plans, or copied in), from its config.json
    or result.json; None for a user's own run, which has no cell."""
    for name, pick in (("config.json", lambda data: data["cell"]), (RESULT, lambda data: data)):
        if (directory / name).exists():
            try:
                data = pick(read_json(directory / name))
                cell = Cell(data["method"], data["dataset"], data["labels"], data["seed"], data.get("permuted", False))
            except (KeyError, TypeError):
                continue
            return cell if cell.name == directory.name else None
    return None


def _cell_row(out: Path, cell: Cell, done: int, planned: int | None, left: float | None, run: RunDir,
              own: int) -> Row:
    """A cell's state: done, running (where), failed (last error) or waiting (after ``own``
    epochs of its own, not counting a Tagger's unsupervised phase)."""
    result = run.path / RESULT
    if result.exists():
        figures = read_result(result)
        return Row(cell.name, "done", done, done if planned is None else planned, 0.0,
                   f"{figures['test_error']:.2f} % test error")
    lock = cell_lock(out, cell)
    if held(lock):
        return Row(cell.name, "running", done, planned, left, describe_holder(holder(lock)))
    error = error_record(out, cell)
    if error.exists():
        return Row(cell.name, "failed", done, planned, left, read_json(error).get("error", "?"))
    return Row(cell.name, "waiting", done, planned, left, f"resumes after epoch {own}" if own else "")


def run_rows(folder: Path) -> list[Row]:
    """Every training run (a directory with config.json) up to three levels below ``folder``."""
    rows = []
    configs = sorted({*folder.glob("config.json"), *folder.glob("*/config.json"), *folder.glob("*/*/config.json")})
    for config in configs:
        run = RunDir(config.parent)
        settings = read_json(config)
        planned = settings.get("training", {}).get("epochs") if isinstance(settings, dict) else None
        history = run.history()
        speed = _seconds(history)
        done = len(history)
        finished = planned is not None and done >= planned
        left = 0.0 if finished else (None if planned is None or speed is None else (planned - done) * speed)
        name = str(config.parent.relative_to(folder)) if config.parent != folder else folder.name
        rows.append(Row(name, "done" if finished else "incomplete", done, planned, left,
                        "" if finished else "running, or stopped: resume it to go on"))
    return rows


def status_rows(directory: Path) -> list[Row]:
    """The rows of a benchmark directory, or of any folder of runs; a benchmark directory
    inside the folder (``tagtool reproduce``'s table2/) shows its cells, named below it."""
    directory = Path(directory)
    if is_benchmark(directory):
        return benchmark_rows(directory)
    nested = [sub for sub in sorted(directory.iterdir()) if sub.is_dir() and is_benchmark(sub)]
    rows = [row for row in run_rows(directory) if not any(row.name.startswith(f"{sub.name}/") for sub in nested)]
    for sub in nested:
        rows += [replace(row, name=f"{sub.name}/{row.name}") for row in benchmark_rows(sub)]
    return rows


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_status(rows: list[Row]) -> str:
    """A plain-text table of the rows and one summary line."""
    if not rows:
        return "nothing planned or trained here yet\n"
    table = [("cell / run", "state", "epochs", "left", "")] + [
        (row.name, row.state, f"{row.done}/{row.planned if row.planned is not None else '?'}",
         _duration(row.seconds_left), row.detail)
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line[:4], widths)) + "  " + line[4] for line in table]
    counts = defaultdict(int)
    for row in rows:
        counts[row.state] += 1
    known = [row.seconds_left for row in rows if row.seconds_left is not None]
    unknown = len(rows) - len(known)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    lines += ["", f"{len(rows)} in all: {summary}; {_duration(sum(known))} of training left at the measured speeds"
              + (f" (and {unknown} not measured yet)" if unknown else "")
              + " (summed over cells: divide by the workers running at once)"]
    return "\n".join(line.rstrip() for line in lines) + "\n"
