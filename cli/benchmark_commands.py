"""`tagtool benchmark`: the paper's Table 2 grid (classification on TextureMNIST1/2), run in this
process, on a local pool of workers or as a Slurm job array; `tagtool benchmark-cell` runs one
planned cell (for users' own sbatch array scripts); `tagtool status` shows where a grid stands."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
from tagtool_cli.interrupts import on_interrupt
from tagtool_cli.options import (
    DEVICE_HELP,
    PRECISION_CHOICE,
    PRECISION_HELP,
    positive,
    threads_option,
)

from tagdata.errors import UserError
from tagmodels.benchmark.settings import BUDGETS, DATASETS, LADDER_WEIGHTS, METHODS, SCALES, TAGGER_SUPERVISED

EXECUTORS = ("inline", "local", "slurm")


def _expand(value: str, names: tuple[str, ...]) -> list[str]:
    return list(names) if value == "all" else [value]


@click.command()
@click.option("--method", type=click.Choice([*METHODS, "all"]), default="all", show_default=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "all"]), default="all", show_default=True)
@click.option("--labels", type=click.Choice([*BUDGETS, "all"]), default="all", show_default=True,
              help="50000: every training label; 1000: 1,000 labelled + the rest unlabelled")
@click.option("--seeds", type=int, default=1, show_default=True, callback=positive, help="runs seeds 0..N-1")
@click.option("--scale", type=click.Choice(SCALES), default="quick", show_default=True,
              help="paper: the paper's epochs and widths (GPU); cpu: the full data, narrower and shorter "
                   "(about 2 h on 2 CPU cores); quick: a ~15 min CPU smoke check")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="benchmark directory")
@click.option("--mnist-dir", envvar="TAGDATA_MNIST_DIR", type=click.Path(file_okay=False),
              help="MNIST IDX files, to make the datasets [env: TAGDATA_MNIST_DIR]")
@click.option("--permute-pixels", is_flag=True, help="apply one fixed pixel permutation (per seed) to every image")
@click.option("--tagger-supervised", type=click.Choice(list(TAGGER_SUPERVISED)), default="runner", show_default=True,
              help="FC Tagger's supervised phase: the 2016 release's runner (class weight 0.1, noise 0.18, lr 0.0002) "
                   "or its pretrained model's (0.05, 0.15, 0.0005); the cpu scale keeps its lr 0.001")
@click.option("--ladder-weights", type=click.Choice(LADDER_WEIGHTS), default="per-budget", show_default=True,
              help="FC Ladder denoising weights: Rasmus et al.'s few-label ones (1000, 10, 0.1, ...) for both budgets, "
                   "or per budget (all labels: 1000, 1, 0.01, ...)")
@click.option("--ladder-normalise-reconstruction", is_flag=True,
              help="FC Ladder: normalise each reconstruction with the clean pass's batch mean and variance "
                   "before the cost (Rasmus et al., Algorithm 1)")
@click.option("--set", "set_options", multiple=True, metavar="METHOD.SETTING=VALUE",
              help="replace one of a method's settings at both label budgets, VALUE in JSON, e.g. "
                   "fc-ladder.noise_std=0.1 or fc-ladder.widths=[1000,500] (repeatable; recorded in benchmark.json)")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--compile/--no-compile", "compile_model", default=False, show_default=True,
              help="torch.compile the models (slow to start, faster per step)")
@threads_option
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--executor", type=click.Choice(EXECUTORS), default="inline", show_default=True,
              help="inline: the cells one after another in this process; local: a pool of worker "
                   "processes (--max-parallel); slurm: one Slurm job array through submitit")
@click.option("--max-parallel", type=int, default=None, callback=positive,
              help="local: workers at once, each pinned to a GPU (round-robin) or to its share of the CPU "
                   "cores [default: the visible GPUs, else 2]")
@click.option("--seeds-per-task", type=int, default=None, callback=positive,
              help="local and slurm: the seeds of a cell one task trains as one population (a GPU shares "
                   "its matmuls between them; on a CPU they run one after another) [default: all of them]")
@click.option("--slurm-partition", default=None, help="slurm: the partition")
@click.option("--slurm-time", default="4:00:00", show_default=True,
              help="slurm: each task's time limit (minutes, HH:MM:SS or D-HH:MM); a cell cut short is requeued "
                   "and resumes")
@click.option("--slurm-gpus-per-task", type=int, default=1, show_default=True, help="slurm: GPUs of each task (0: none)")
@click.option("--slurm-cpus-per-task", type=int, default=None, callback=positive, help="slurm: CPUs of each task")
@click.option("--slurm-array-parallelism", type=int, default=8, show_default=True, callback=positive,
              help="slurm: cells running at once (the array's %N cap)")
@click.option("--slurm-option", "slurm_options", multiple=True, metavar="NAME[=VALUE]",
              help="slurm: any other sbatch option, e.g. account=proj or qos=high (repeatable)")
@click.option("--slurm-folder", type=click.Path(file_okay=False), default=None,
              help="slurm: submitit's logs and job files, on a shared file system [default: OUT/slurm]")
@click.option("--plan-only", is_flag=True,
              help="write OUT/plan.json and list the cells' indices for `tagtool benchmark-cell`; run nothing")
def benchmark(method, dataset, labels, seeds, scale, out_dir, mnist_dir, permute_pixels, tagger_supervised,
              ladder_weights, ladder_normalise_reconstruction, set_options, device, precision, compile_model, threads, quiet, executor, max_parallel, seeds_per_task, slurm_partition, slurm_time, slurm_gpus_per_task,
              slurm_cpus_per_task, slurm_array_parallelism, slurm_options, slurm_folder, plan_only):
    """Run the grid of Table 2; skips finished cells, resumes half-finished ones, writes DIR/table.md."""
    from tagdata.atomic import new_directory
    from tagmodels.benchmark.executors import bookkeeping
    from tagmodels.benchmark.grid import grid
    from tagmodels.benchmark.plan import Plan, extend_plan
    from tagmodels.benchmark.settings import Choices, get_scale, parse_settings

    cells = grid(_expand(method, METHODS), _expand(dataset, DATASETS), _expand(labels, BUDGETS), seeds, permute_pixels)
    out = Path(out_dir)
    slurm = None
    if executor == "slurm":  # check the options before anything is written
        from tagmodels.benchmark.slurm import import_submitit, parse_sbatch_options, slurm_parameters

        import_submitit()
        slurm = slurm_parameters(slurm_partition, slurm_time, slurm_gpus_per_task or None, slurm_cpus_per_task,
                                 slurm_array_parallelism, parse_sbatch_options(slurm_options))
    mnist = str(Path(mnist_dir).resolve()) if mnist_dir else None
    choices = Choices(tagger_supervised, ladder_weights, ladder_normalise_reconstruction, parse_settings(set_options))
    chosen_scale = get_scale(scale).with_choices(choices)  # an unknown --set is refused before anything is written
    on_interrupt(lambda: f"finished cells are kept in {out_dir}; run the same command again to do the rest")
    started = time.perf_counter()
    with new_directory(out, ignore=bookkeeping(cells)):  # a refused first command leaves no folder
        plan = extend_plan(out, Plan(chosen_scale, cells, precision, compile_model, mnist))
        if plan_only:
            indices = [plan.index(cell) for cell in cells]
            click.echo(f"{out / 'plan.json'}: {len(plan.cells)} cells; this selection is indices {_ranges(indices)}")
            for index in indices:
                click.echo(f"  {index:3d}  {plan.cells[index].name}")
            return
        if executor == "inline":
            outcomes = _inline(out, cells, device, threads, quiet)
        elif executor == "local":
            from tagmodels.benchmark.executors import run_local

            outcomes = run_local(out, cells, max_parallel or _default_parallel(device), device, threads,
                                 log=click.echo, seeds_per_task=seeds_per_task)
        else:
            _submit(out, cells, plan, slurm, slurm_folder, device, seeds_per_task)
            return
    _report(out, outcomes, time.perf_counter() - started)


def _inline(out: Path, cells, device, threads, quiet):
    from tagmodels.benchmark.executors import planned_benchmark, run_inline
    from tagmodels.training.precision import describe

    _, bench = planned_benchmark(out, "inline", device, threads, progress=not quiet, log=click.echo)
    click.echo(describe(bench.device, bench.precision, bench.compile))
    return run_inline(bench, cells, log=click.echo)


def _default_parallel(device: str | None) -> int:
    from tagmodels.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        import torch

        return torch.cuda.device_count()
    return 2


def _submit(out: Path, cells, plan, parameters, folder, device, seeds_per_task) -> None:
    """Make the datasets here (so that the tasks need not), then submit the cells still to do,
    one population per array task."""
    from tagmodels.benchmark.executors import planned_benchmark, populations
    from tagmodels.benchmark.slurm import slurm_executor, submit_array

    todo = [cell for cell in cells if not (out / "runs" / cell.name / "result.json").exists()]
    if not todo:
        click.echo(f"every cell is done: {out / 'table.md'}")
        return
    executor = slurm_executor(Path(folder) if folder else out / "slurm", parameters)
    _, bench = planned_benchmark(out, "slurm", "cpu", 1, log=click.echo)
    for dataset in sorted({cell.dataset for cell in cells}):
        bench.dataset_path(dataset)
    tasks = [[plan.index(cell) for cell in population] for population in populations(todo, seeds_per_task)]
    submit_array(executor, out, tasks, device, log=click.echo)
    click.echo(f"follow it with: tagtool status {out}")


def _report(out: Path, outcomes, seconds: float) -> None:
    """The closing line, and a non-zero exit when a cell failed."""
    failed = [o for o in outcomes if o.state == "failed"]
    elsewhere = [o for o in outcomes if o.state == "elsewhere"]
    click.echo(f"{len(outcomes)} cells in {seconds:.0f} s -> {out / 'table.md'}")
    if elsewhere:
        click.echo(f"{len(elsewhere)} cell(s) were running in another process; `tagtool status {out}` follows them")
    if failed:
        raise UserError(f"{len(failed)} cell(s) failed (first: {failed[0].cell.name}: {failed[0].detail}); "
                        f"`tagtool status {out}` lists them; run the command again to retry")


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] as '0-2,5' (the form of sbatch --array)."""
    parts, start = [], None
    for i, index in enumerate(indices):
        if start is None:
            start = index
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts)


@click.command("benchmark-cell")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--index", type=int, envvar="SLURM_ARRAY_TASK_ID", required=True,
              help="the cell's index in DIR/plan.json [env: SLURM_ARRAY_TASK_ID]")
@click.option("--device", default=None, help=DEVICE_HELP)
@threads_option
@click.option("--quiet", is_flag=True, help="no progress bars")
def benchmark_cell(directory, index, device, threads, quiet):
    """Run cell I of a planned grid (`benchmark --plan-only`), e.g. as one task of your own sbatch array."""
    from tagmodels.benchmark.executors import run_planned_cells

    executor = "sbatch" if os.environ.get("SLURM_JOB_ID") else "cell"
    on_interrupt(lambda: f"the cell resumes from its last checkpoint when run again: tagtool benchmark-cell {directory} --index {index}")
    (outcome,) = run_planned_cells(directory, [index], executor, device, threads, progress=not quiet, log=click.echo)
    click.echo(f"{outcome.cell.name}: {outcome.line()}")
    if outcome.state == "elsewhere":
        raise UserError(f"cell {index} is being run by another process ({outcome.detail})")


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--table", is_flag=True, help="a benchmark directory: render DIR/table.md from the results so far")
def status(directory, table):
    """Where a grid (or a folder of training runs) stands: each cell's state, epochs and time left."""
    from tagmodels.benchmark.executors import render_table
    from tagmodels.benchmark.plan import is_benchmark, read_plan
    from tagmodels.benchmark.status import render_status, status_rows

    path = Path(directory)
    click.echo(render_status(status_rows(path)), nl=False)
    if table:
        if not is_benchmark(path):
            raise UserError(f"{directory} is not a benchmark directory: --table renders a benchmark's table.md")
        click.echo(f"-> {render_table(path, read_plan(path).scale)}")


COMMANDS: list[click.Command] = [benchmark, benchmark_cell, status]
