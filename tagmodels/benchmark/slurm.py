"""The grid as one Slurm job array, through submitit (an optional extra: ``pip install '.[slurm]'``).

Each array task runs the seeds of one planned cell as one population (:class:`PopulationTask`,
the same code as ``tagtool benchmark-cell``) in the shared benchmark directory: on a GPU the
seeds share its matmuls. submitit sends the job a signal before its time limit or on
preemption and calls :meth:`PopulationTask.checkpoint`, which requeues the same cells; the
requeued task resumes them from their last epoch's checkpoints. The array's ``%N`` cap
(``--slurm-array-parallelism``) bounds how many tasks run at once.

:func:`slurm_parameters` turns the command's options into submitit's SlurmExecutor
parameters without importing submitit, so that what would be submitted can be checked
anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from tagdata.errors import UserError
from tagmodels.benchmark.executors import Outcome, run_planned_cells
from tagmodels.training.threads import usable_cores

JOB_NAME = "tagtool-benchmark"
# Requeues after reaching the time limit before a task is given up (each resumes its cell, so a
# cell longer than --slurm-time still finishes; submitit's default is 3).
MAX_TIMEOUTS = 10


def parse_minutes(text: str) -> int:
    """Slurm's time forms (MM, HH:MM:SS, D-HH, D-HH:MM[:SS]; MM:SS counts as minutes) in
    whole minutes, rounded up."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise UserError(f"--slurm-time {text!r} is not a Slurm time (minutes, HH:MM:SS or D-HH:MM)")
    days, first, second, third = (int(part) if part else None for part in match.groups())
    if days is not None:
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:
        hours, minutes, seconds = first, second, third
    elif second is not None:
        hours, minutes, seconds = 0, first, second
    else:
        hours, minutes, seconds = 0, first, 0
    total = ((days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)
    if total < 1:
        raise UserError(f"--slurm-time {text!r} must be at least one minute")
    return total


def parse_sbatch_options(options: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--slurm-option account=proj --slurm-option exclusive`` as {"account": "proj", "exclusive": True}."""
    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.lstrip("-").partition("=")
        if not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise UserError(f"--slurm-option {option!r} is not NAME=VALUE or NAME (an sbatch option)")
        parsed[key.replace("-", "_")] = value if sep else True
    return parsed


def slurm_parameters(
    partition: str | None, time: str, gpus_per_task: int | None, cpus_per_task: int | None,
    array_parallelism: int, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for the grid's array (``--requeue``: a task preempted or
    on a failed node goes back to the queue and resumes its cell)."""
    parameters: dict[str, Any] = {
        "job_name": JOB_NAME,
        "time": parse_minutes(time),
        "array_parallelism": array_parallelism,
        "additional_parameters": {"requeue": True, **(extra or {})},
    }
    for name, value in (("partition", partition), ("gpus_per_task", gpus_per_task), ("cpus_per_task", cpus_per_task)):
        if value is not None:
            parameters[name] = value
    return parameters


class PopulationTask:
    """One array task: the cells ``indices`` of the plan in ``out``, seeds of one cell trained
    as one population (picklable, for submitit)."""

    def __init__(self, out: str, device: str | None = None) -> None:
        self.out = str(Path(out).resolve())
        self.device = device

    def __call__(self, indices: list[int]) -> list[Outcome]:
        # The task's own CPUs (Slurm sets the affinity), not the node's load average.
        return run_planned_cells(self.out, indices, "slurm", self.device, usable_cores(), log=lambda line: None)

    def checkpoint(self, indices: list[int]) -> Any:
        """submitit calls this on preemption or timeout: requeue the same cells, which resume
        from their last checkpoints."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, indices)


def import_submitit() -> Any:
    """submitit, or a one-line error saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise UserError("--executor slurm needs submitit: pip install '.[slurm]'") from None
    return submitit


def slurm_executor(folder: Path, parameters: dict[str, Any]) -> Any:
    """submitit's Slurm executor with the grid's parameters (needs sbatch and srun)."""
    submitit = import_submitit()
    try:
        executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=MAX_TIMEOUTS)
    except RuntimeError as err:  # no srun on this machine
        raise UserError(f"--executor slurm: {err}") from None
    executor.update_parameters(**parameters)
    return executor


def submit_array(executor: Any, out: Path, tasks: list[list[int]], device: str | None = None,
                 log: Callable[[str], None] = print) -> list[Any]:
    """Submit one array task per list of planned cells' indices (one population each) through
    ``executor`` (submitit's Slurm executor, or its debug/local one in tests); returns submitit's jobs."""
    jobs = executor.map_array(PopulationTask(str(out), device), tasks)
    if jobs:
        cells = sum(len(task) for task in tasks)
        log(f"submitted {cells} cells as {len(jobs)} tasks of job array {str(jobs[0].job_id).split('_')[0]}")
    return jobs
