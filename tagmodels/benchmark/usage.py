"""What a cell cost, for its result.json: peak memory, training throughput, and who ran it.

Peak memory is the device's: on CUDA the most memory torch's allocator held during the cell
(the count is reset when the cell starts); on the CPU the peak resident set of the process
that ran the cell, which covers every cell that process ran before (a pool worker runs
several, one after another).
"""

from __future__ import annotations

import os
import resource
import socket
import sys
from typing import Any

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start counting the cell's peak memory afresh (CUDA only; see the module's note)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """MiB at the peak: CUDA allocator memory since the reset, or the process's peak RSS."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def samples_per_second(history: list[dict[str, Any]], n_train: int) -> float | None:
    """Training examples a second over every epoch of ``history`` (None before the first)."""
    seconds = sum(row["seconds"] for row in history)
    return round(len(history) * n_train / seconds, 1) if seconds > 0 else None


def slurm_job_id() -> str | None:
    """The Slurm job running this process: ``ARRAYJOB_TASK`` in a job array, else the job id."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def where(executor: str, device: torch.device, worker: int | None = None) -> dict[str, Any]:
    """Who runs a cell: the executor, this host and process, its device and Slurm job id."""
    return {
        "executor": executor, "job_id": slurm_job_id(), "worker": worker,
        "host": socket.gethostname(), "pid": os.getpid(), "device": str(device),
    }
