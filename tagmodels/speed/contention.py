"""Training beside other work: the same short `tagtool train` alone, beside one busy process,
and two at once, for each thread setting (``tagtool speed-contention``).

On a machine of a few cores, torch's spinning OpenMP workers make a run that shares its
cores many times slower, not 2 times; this measures what a thread setting costs in each
case. Every run is a fresh ``tagtool train`` process (threads and OpenMP are set per
process), on one small Shapes file, and the figure is its wall time.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tagdata

BUSY = "while True: pass"  # one process that keeps a core busy


def _train(data: Path, out: Path, threads: str, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "tagtool_cli.main", "train", "--data", str(data), "--out", str(out),
               "--preset", "shapes-small", "--epochs", str(epochs), "--threads", threads, "--quiet",
               "--device", "cpu", "--precision", "fp32"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wall(processes: list[subprocess.Popen]) -> float:
    started = time.perf_counter()
    for process in processes:
        _, error = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"tagtool train failed: {error.strip().splitlines()[-1] if error else process.returncode}")
    return round(time.perf_counter() - started, 2)


def measure_contention(thread_settings: list[str], images: int = 3000, epochs: int = 2) -> dict[str, Any]:
    """Wall seconds of a shapes-small run per thread setting: alone, beside a busy process, two at once."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tagtool-contention-") as tmp:
        data = Path(tmp) / "shapes.h5"
        spec = tagdata.with_overrides(tagdata.resolve_spec("shapes"), train=images, valid=200, test=200, single=0)
        tagdata.make_dataset(spec, data)
        for threads in thread_settings:
            alone = _wall([_train(data, Path(tmp) / f"alone-{threads}", threads, epochs)])
            busy = subprocess.Popen([sys.executable, "-c", BUSY])
            try:
                beside = _wall([_train(data, Path(tmp) / f"beside-{threads}", threads, epochs)])
            finally:
                busy.kill()
                busy.wait()
            pair = _wall([_train(data, Path(tmp) / f"pair-{threads}-{i}", threads, epochs) for i in range(2)])
            rows.append({
                "threads": threads, "alone_seconds": alone, "beside_busy_seconds": beside,
                "two_at_once_seconds": pair, "beside_busy_slowdown": round(beside / alone, 2),
                "two_at_once_slowdown": round(pair / alone, 2),
            })
    return {"preset": "shapes-small", "train_images": images, "epochs": epochs, "precision": "fp32", "settings": rows}
