"""CPU threads that follow the cores other processes leave free.

torch's OpenMP workers spin while they wait, which is what makes a 2-core machine fast when
it is idle and many times slower when another process wants a core: measured on 2 cores, a
2-thread shapes-paper step ran at about 960 samples/s alone, 197 beside one busy process
and 58 each for two trainings started together (the passive wait policy keeps contention
at 2x but costs 17 % on an idle machine). So the threads adapt instead: at the start a run
takes the cores the load average leaves free, and every few seconds it measures how much
CPU other processes used (all CPU time minus its own, from /proc) and takes the cores they
leave. One thread never waits on another, so a busy machine costs about 2x, and an idle
one keeps its spinning threads. The start samples /proc/stat over a quarter of a second
rather than reading the load average, which lags what the machine does now by a minute.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from tagdata.errors import UserError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SAMPLE_SECONDS = 0.25  # how long the start watches /proc/stat


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_ticks(stat: str) -> tuple[int, int]:
    """(busy, idle) jiffies of the aggregate ``cpu`` line of /proc/stat's text; iowait counts as idle."""
    fields = stat.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        raise ValueError(f"not a /proc/stat aggregate cpu line: {stat[:60]!r}")
    ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, idle


def busy_cores(before: str, after: str, cpus: int) -> float:
    """Cores busy between two /proc/stat snapshots: the busy share of all jiffies times ``cpus``."""
    busy_before, idle_before = cpu_ticks(before)
    busy_after, idle_after = cpu_ticks(after)
    busy, idle = busy_after - busy_before, idle_after - idle_before
    return cpus * busy / (busy + idle) if busy + idle > 0 else 0.0


def _read_stat() -> str | None:
    """/proc/stat's text, or None where there is none (macOS)."""
    try:
        return Path("/proc/stat").read_text()
    except OSError:
        return None


def _busy_now(seconds: float) -> float | None:
    """Cores busy over the next ``seconds``, from two /proc/stat snapshots; None without /proc."""
    before = _read_stat()
    if before is None:
        return None
    time.sleep(seconds)
    after = _read_stat()
    return None if after is None else busy_cores(before, after, os.cpu_count() or 1)


def _busy_lately() -> float:
    """Cores busy by the 1-minute load average, for machines without /proc/stat."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def free_cores(sample_seconds: float = SAMPLE_SECONDS) -> int:
    """Cores not busy with other work now, at least 1: the usable cores minus those busy over
    ``sample_seconds`` (/proc/stat), or minus the load average where there is no /proc/stat."""
    cores = usable_cores()
    busy = _busy_now(sample_seconds)
    busy = _busy_lately() if busy is None else busy
    return max(1, min(cores, cores - round(busy)))


def resolve_threads(threads: int | str | None) -> int:
    """A thread count: an explicit positive number, or the free cores for None or "auto"."""
    if threads in (None, "auto"):
        return free_cores()
    try:
        count = int(threads)
    except (TypeError, ValueError):
        raise UserError(f"--threads must be a positive number or auto, got {threads!r}") from None
    if count < 1:
        raise UserError(f"--threads must be at least 1, got {count}")
    return count


def _busy_ticks() -> tuple[int, int] | None:
    """(CPU ticks all processes spent busy, ticks this process spent), or None without /proc."""
    stat = _read_stat()
    try:
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if stat is None else cpu_ticks(stat)[0], int(own[11]) + int(own[12])  # utime + stime


class CoreShare:
    """Sets torch's thread count to the cores other processes left free over the last period."""

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.cores = usable_cores()
        self._last = (time.monotonic(), _busy_ticks())

    def adjust(self) -> None:
        """Cheap to call every step: acts once per period."""
        now = time.monotonic()
        then, before = self._last
        if now - then < self.period or before is None:
            return
        after = _busy_ticks()
        self._last = (now, after)
        if after is None:
            return
        others = max(0, (after[0] - before[0]) - (after[1] - before[1])) / CLOCK_TICKS / (now - then)
        threads = max(1, min(self.cores, self.cores - round(others)))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
