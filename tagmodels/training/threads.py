"""CPU threads that follow the cores other processes leave free.

torch's OpenMP workers spin while they wait, which is what makes a 2-core machine fast when
it is idle and many times slower when another process wants a core: measured on 2 cores, a
2-thread shapes-paper step ran at about 960 samples/s alone, 197 beside one busy process
and 58 each for two trainings started together (the passive wait policy keeps contention
at 2x but costs 17 % on an idle machine). So the threads adapt instead: at the start a run
takes the cores the load average leaves free, and every few seconds it measures how much
CPU other processes used (all CPU time minus its own, from /proc) and takes the cores they
leave. One thread never waits on another, so a busy machine costs about 2x, and an idle
one keeps its spinning threads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from tagdata.errors import UserError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy with other work: the usable cores minus the 1-minute load average, at least 1."""
    cores = usable_cores()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


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
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime


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
