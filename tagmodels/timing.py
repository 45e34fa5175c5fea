"""Wall time of work queued on a device: synchronised around the timed region only."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU, which computes as it is asked)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], Any], device: torch.device, min_seconds: float = 1.0) -> float:
    """Mean wall time of ``fn`` after a warm-up, over a run of calls lasting at least
    ``min_seconds``. The device is synchronised around the timed run only, never between
    its calls: an accelerator queues them as a training epoch does."""
    for _ in range(2):
        fn()
    synchronize(device)
    calls = 3
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / calls
        calls = max(calls + 1, math.ceil(1.2 * calls * min_seconds / max(elapsed, 1e-9)))
