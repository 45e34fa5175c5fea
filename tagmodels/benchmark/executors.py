"""Who runs the cells of a planned grid: this process (inline), a pool of worker processes on
this machine (local), or Slurm array tasks (tagmodels.benchmark.slurm).

Every executor runs the seeds of a cell as one population through :func:`attempt_seeds` (the
pool and Slurm one population per task, of at most ``seeds_per_task`` seeds), which takes each
cell's lock without
waiting (tagmodels.benchmark.locks): a cell that another process is running is passed over,
so two commands on one directory never run a cell twice, and a cell whose process died
(killed, preempted) is free again and resumes from its last checkpoint when a grid is run
again. A cell that fails leaves ``state/<cell>.error`` with its last error line for
``tagtool status``; a later success removes it.

The local pool is the standard library's (``concurrent.futures`` with spawned processes),
since submitit's local executor has no cap on parallel jobs. Each worker is pinned to one
device for its life: CUDA devices round-robin, or on the CPU a share of the cores (its own
cores by affinity, and that many threads). A population of Tagger cells waits to be
dispatched while one of the other label budget's, sharing an unsupervised phase with it, is
running, so no worker sits waiting on the phase's lock.
"""

from __future__ import annotations

import multiprocessing
import os
from contextlib import ExitStack
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from tagmodels.benchmark.grid import META, STATE, Benchmark, Cell, unsupervised_run
from tagmodels.benchmark.locks import GUARD, claim, exclusive, holder
from tagmodels.benchmark.plan import PLAN, Plan, read_plan
from tagmodels.benchmark.settings import Scale
from tagmodels.benchmark.table import read_result, write_table
from tagmodels.benchmark.usage import where
from tagmodels.device import resolve_device
from tagmodels.training.precision import configure
from tagmodels.training.runs import RunDir, write_json
from tagmodels.training.threads import usable_cores


@dataclass(frozen=True)
class Outcome:
    """What became of one cell: "ran" now, "skipped" (done before), "elsewhere" (another
    process holds it), "unfinished" (a deadline stopped it) or "failed"; ``detail`` says
    where it runs, why it stopped or what went wrong."""

    cell: Cell
    state: str
    result: dict[str, Any] | None = None
    detail: str = ""

    def line(self) -> str:
        """One log line's worth."""
        if self.state == "ran":
            return f"{self.result['test_error']:.2f} % test error ({self.result['wall_seconds']:.0f} s)"
        if self.state == "skipped":
            return f"{self.result['test_error']:.2f} % test error (done before, skipped)"
        if self.state == "elsewhere":
            return f"running elsewhere ({self.detail}), passed over"
        if self.state == "unfinished":
            return f"unfinished: {self.detail}"
        return f"FAILED: {self.detail}"


def cell_lock(out: Path, cell: Cell) -> Path:
    return Path(out) / STATE / f"{cell.name}.lock"


def error_record(out: Path, cell: Cell) -> Path:
    return Path(out) / STATE / f"{cell.name}.error"


def bookkeeping(cells: list[Cell]) -> tuple[str, ...]:
    """The names of the files a command writes for ``cells`` before training any of them (the
    directory's record and plan, the locks, a failed cell's error record): a command refused
    before that may remove a directory holding nothing else (tagdata.atomic.new_directory)."""
    names = {META, PLAN, "plan.lock", GUARD, "table.lock"}
    for cell in cells:
        names |= {cell_lock(Path(), cell).name, error_record(Path(), cell).name, f"data-{cell.dataset}.lock"}
        phase = unsupervised_run(Path(), cell).path
        names.add(f"{phase.parent.name}_{phase.name}.lock")
    return tuple(sorted(names))


def describe_holder(record: dict[str, Any]) -> str:
    """'local worker 1 on host (pid 42, cuda:1)' from a lock file's record."""
    name = record.get("executor", "?")
    if record.get("worker") is not None:
        name += f" worker {record['worker']}"
    job = f"job {record['job_id']}, " if record.get("job_id") else ""
    return f"{name} on {record.get('host', '?')} ({job}pid {record.get('pid', '?')}, {record.get('device', '?')})"


def last_line(err: BaseException) -> str:
    """The last line of an error's message, with its type."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[-1]}" if lines else type(err).__name__


def attempt_seeds(bench: Benchmark, cells: list[Cell], deadline: float | None = None) -> list[Outcome]:
    """Cells that differ only in their seed: those done are skipped, those another process
    holds are left to it, and the rest train as one population (Benchmark.run_seeds) until
    ``deadline`` at most ("unfinished": they resume). A member that diverged gets its error
    record after the others' results are written, then its error is raised, as a single
    cell's is."""
    outcomes: dict[Cell, Outcome] = {}
    with ExitStack() as locks:
        mine = []
        for cell in cells:
            if bench.result_path(cell).exists():
                outcomes[cell] = Outcome(cell, "skipped", read_result(bench.result_path(cell)))
            elif locks.enter_context(claim(cell_lock(bench.out, cell), bench.executor)):
                mine.append(cell)
            else:
                outcomes[cell] = Outcome(cell, "elsewhere", detail=describe_holder(holder(cell_lock(bench.out, cell))))
        if mine:
            try:
                results = bench.run_seeds(mine, deadline)
            except Exception as err:
                for cell in mine:
                    _record_error(bench, cell, err)
                raise
            finally:  # a pool worker lives on: give up the run directories' own locks (tagdata.locking)
                for cell in mine:
                    RunDir(bench.result_path(cell).parent).release()
            for cell, result in zip(mine, results):
                if isinstance(result, Exception):
                    _record_error(bench, cell, result)
                elif result is None:
                    outcomes[cell] = Outcome(cell, "unfinished", detail="stopped at the deadline; it resumes")
                else:
                    error_record(bench.out, cell).unlink(missing_ok=True)
                    outcomes[cell] = Outcome(cell, "ran", result)
            diverged = next((result for result in results if isinstance(result, Exception)), None)
            if diverged is not None:
                raise diverged
    return [outcomes[cell] for cell in cells]


def _record_error(bench: Benchmark, cell: Cell, err: BaseException) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(error_record(bench.out, cell), {"error": last_line(err), "where": bench.executor, "at": stamp})


def populations(cells: list[Cell], seeds_per_task: int | None = None) -> list[list[Cell]]:
    """``cells`` grouped into the populations they train as: the seeds of one (method, dataset,
    label budget, pixel order), in the order each group first appears, split into parts of at
    most ``seeds_per_task`` seeds (None: no limit)."""
    groups: dict[tuple[str, str, str, bool], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.population, []).append(cell)
    size = seeds_per_task or len(cells) or 1
    return [group[start:start + size] for group in groups.values() for start in range(0, len(group), size)]


def render_table(out: Path, scale: Scale) -> Path:
    """table.md from every result so far, one writer at a time."""
    with exclusive(Path(out) / STATE / "table.lock"):
        return write_table(Path(out), scale)


def planned_benchmark(
    out: Path | str, executor: str, device: str | None, threads: int | str | None, worker: int | None = None,
    progress: bool = False, log: Callable[[str], None] = print,
) -> tuple[Plan, Benchmark]:
    """The directory's plan and a Benchmark that computes its cells on ``device`` as planned
    (precision resolved for that device, CPU threads set)."""
    plan = read_plan(out)
    dev = resolve_device(device)
    precision = configure(dev, plan.precision, threads)
    bench = Benchmark(
        out, plan.scale, dev, plan.mnist_dir, progress=progress, log=log, precision=precision,
        compile=plan.compile, adapt_threads=threads in (None, "auto"), executor=where(executor, dev, worker),
    )
    return plan, bench


def run_planned_cells(out: Path | str, indices: list[int], executor: str, device: str | None,
                      threads: int | str | None, progress: bool = False,
                      log: Callable[[str], None] = print) -> list[Outcome]:
    """Cells ``indices`` of the directory's plan (seeds of one cell: one population) in this
    process, then table.md: what a Slurm array task and ``tagtool benchmark-cell`` run."""
    plan, bench = planned_benchmark(out, executor, device, threads, progress=progress, log=log)
    outcomes = attempt_seeds(bench, [plan.cell(index) for index in indices])
    if any(outcome.state == "ran" for outcome in outcomes):
        render_table(bench.out, plan.scale)
    return outcomes


def run_inline(bench: Benchmark, cells: list[Cell], log: Callable[[str], None] = print) -> list[Outcome]:
    """Every cell in this process, the seeds of each (method, dataset, budget, pixel order) as
    one population, re-rendering table.md after each population."""
    outcomes: dict[Cell, Outcome] = {}
    for group in populations(cells):
        for cell, outcome in zip(group, attempt_seeds(bench, group)):
            outcomes[cell] = outcome
            log(f"[{len(outcomes)}/{len(cells)}] {cell.name}: {outcome.line()}")
        render_table(bench.out, bench.scale)
    return [outcomes[cell] for cell in cells]


# ---------------------------------------------------------------------------- local pool


@dataclass(frozen=True)
class Slot:
    """One pool worker's device: a CUDA device, or CPU cores (affinity) and a thread count."""

    worker: int
    device: str
    threads: int
    cores: tuple[int, ...] | None = None


def worker_slots(max_parallel: int, device: str | None, threads: int | str | None) -> list[Slot]:
    """Devices of ``max_parallel`` workers: CUDA devices round-robin when the device is CUDA
    (cuda:N pins them all to N), else the usable CPU cores split into disjoint shares."""
    dev = resolve_device(device)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(usable_cores()))
    share = max(1, len(cores) // max_parallel)
    count = share if threads in (None, "auto") else int(threads)
    slots = []
    for worker in range(max_parallel):
        if dev.type == "cuda":
            index = dev.index if dev.index is not None else worker % torch.cuda.device_count()
            slots.append(Slot(worker, f"cuda:{index}", count))
        else:
            mine = tuple(cores[worker * share:(worker + 1) * share]) if len(cores) >= max_parallel else None
            slots.append(Slot(worker, "cpu", count, mine))
    return slots


_WORKER: Benchmark | None = None
_PLAN: Plan | None = None


def _start_worker(out: str, slots: Any) -> None:
    """Pool initializer: take a slot, pin this process to it, open the planned benchmark."""
    global _WORKER, _PLAN
    slot: Slot = slots.get()
    if slot.cores is not None:
        os.sched_setaffinity(0, slot.cores)
    _PLAN, _WORKER = planned_benchmark(out, "local", slot.device, slot.threads, worker=slot.worker, log=lambda line: None)


def _work(indices: list[int]) -> list[Outcome]:
    assert _WORKER is not None and _PLAN is not None, "the pool initializer opens the benchmark"
    return attempt_seeds(_WORKER, [_PLAN.cells[index] for index in indices])


def _phases(population: list[Cell]) -> set[tuple[str, int, bool]]:
    """The unsupervised phases a population shares with the other label budget's (Tagger cells only)."""
    return {(cell.dataset, cell.seed, cell.permuted) for cell in population if cell.method == "tagger"}


def dispatchable(pending: list[list[Cell]], running: list[list[Cell]], free: int) -> list[list[Cell]]:
    """The next pending populations (at most ``free``) that share no unsupervised phase with a
    running one or with each other: the second label budget waits for the first."""
    busy = set().union(*map(_phases, running))
    chosen = []
    for population in pending:
        if len(chosen) == free:
            break
        if not _phases(population) & busy:
            chosen.append(population)
            busy |= _phases(population)
    return chosen


def _ended_with(error: BaseException, out: Path, population: list[Cell]) -> list[Outcome]:
    """A population whose task raised: the cells it finished before the error ran, the others failed."""
    outcomes = []
    for cell in population:
        result = Path(out) / "runs" / cell.name / "result.json"
        outcomes.append(Outcome(cell, "ran", read_result(result)) if result.exists()
                        else Outcome(cell, "failed", detail=last_line(error)))
    return outcomes


def run_local(
    out: Path | str, cells: list[Cell], max_parallel: int, device: str | None, threads: int | str | None,
    log: Callable[[str], None] = print, seeds_per_task: int | None = None,
) -> list[Outcome]:
    """Every cell on a pool of ``max_parallel`` spawned workers, one population of at most
    ``seeds_per_task`` seeds per task (see the module's note); the parent alone renders
    table.md, after each task. Cells must be in the directory's plan."""
    plan = read_plan(out)
    order = {cell: plan.index(cell) for cell in cells}
    outcomes: dict[Cell, Outcome] = {}
    pending = []
    for cell in cells:
        result = Path(out) / "runs" / cell.name / "result.json"
        if result.exists():
            outcomes[cell] = Outcome(cell, "skipped", read_result(result))
            log(f"{cell.name}: {outcomes[cell].line()}")
        else:
            pending.append(cell)
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in worker_slots(max_parallel, device, threads):
        slots.put(slot)
        log(f"worker {slot.worker}: {slot.device}, {slot.threads} thread(s)" + (f", cores {list(slot.cores)}" if slot.cores else ""))
    queue = populations(pending, seeds_per_task)
    running: dict[Future, list[Cell]] = {}
    pool = ProcessPoolExecutor(max_parallel, mp_context=context, initializer=_start_worker, initargs=(str(out), slots))
    try:
        while queue or running:
            for population in dispatchable(queue, list(running.values()), max_parallel - len(running)):
                queue.remove(population)
                running[pool.submit(_work, [order[cell] for cell in population])] = population
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                population = running.pop(future)
                error = future.exception()
                for outcome in future.result() if error is None else _ended_with(error, Path(out), population):
                    outcomes[outcome.cell] = outcome
                    log(f"[{len(outcomes)}/{len(cells)}] {outcome.cell.name}: {outcome.line()}")
                render_table(Path(out), plan.scale)
                if isinstance(error, BrokenProcessPool):  # a worker died: the pool takes no more work
                    for waiting in (cell for population in queue for cell in population):
                        outcomes[waiting] = Outcome(waiting, "failed", detail="not started: a worker process died")
                    queue.clear()
    except BaseException:  # Ctrl-C, SIGTERM: stop the workers too; their cells resume when run again
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        slots.close()
    return [outcomes[cell] for cell in cells]
