"""``speed-data``: time full-size dataset generation, file writing included.

Each dataset is generated in a fresh child process (``python -m tagdata.speed NAME OUT
MNIST_DIR``), so its peak memory is its own: the child reports its peak resident set (the
whole process: interpreter, libraries, MNIST, buffers) as VmHWM from /proc/self/status,
because on Linux ``ru_maxrss`` survives exec and would include the parent's memory at
spawn time (``ru_maxrss`` is the fallback elsewhere); and the seconds spent in
:func:`tagdata.make_dataset` (spec to renamed file; interpreter start-up excluded,
reported separately as process_seconds).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tagdata.build import make_dataset
from tagdata.errors import UserError
from tagdata.idx import mnist_dir as resolve_mnist_dir
from tagdata.provenance import code_version, cpu_model
from tagdata.specs import TextureMnistSpec, resolve_spec
from tagdata.version import __version__

DEFAULT_DATASETS = ("shapes", "shapes-2obj", "shapes-4obj", "texture-mnist1", "texture-mnist2")
TARGET_SECONDS = {"shapes": 5.0, "texture-mnist2": 30.0}
TARGET_PEAK_BYTES = 2 * 1024**3
PEAK_METHOD = ("peak resident set size of a fresh child process per dataset (the whole process: "
               "interpreter, libraries, MNIST, buffers): VmHWM from /proc/self/status on Linux, "
               "else ru_maxrss of getrusage(RUSAGE_SELF)")


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process image: VmHWM on Linux (ru_maxrss there also
    counts the parent's memory at fork/exec time), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def measure(name: str, out: Path, mnist_dir: str | None) -> dict:
    """Generate one full dataset in this process and measure it."""
    spec = resolve_spec(name)
    cpu0, start = time.process_time(), time.perf_counter()
    hashes = make_dataset(spec, out, mnist_dir=mnist_dir, overwrite=True)
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(time.process_time() - cpu0, 3),
        "peak_rss_bytes": _peak_rss_bytes(),
        "examples": sum(spec.splits.values()),
        "splits": dict(spec.splits),
        "file_bytes": out.stat().st_size,
        "sha256": hashes,
    }


def _run_child(name: str, out: Path, mnist_dir: str | None) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tagdata.speed", name, str(out), mnist_dir or ""],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"speed-data: generating {name} failed: {lines[-1].removeprefix('Error: ')}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - start, 3)
    return result


def _machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "platform": platform.platform(), "machine": platform.machine(), "cpu_model": cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_bytes": memory, "python": platform.python_version(), "numpy": np.__version__,
        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
    }


def measure_generation_speed(datasets: tuple[str, ...], mnist_dir: str | None, command: str) -> dict:
    """Measure each dataset; returns the JSON-ready report."""
    specs = {name: resolve_spec(name) for name in datasets}
    if any(isinstance(spec, TextureMnistSpec) for spec in specs.values()):
        mnist_dir = str(resolve_mnist_dir(mnist_dir).resolve())
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tagdata-bench-") as tmp:
        for name in datasets:
            out = Path(tmp) / f"{name}.h5"
            result = _run_child(name, out, mnist_dir)
            out.unlink()
            checks = {"peak_under_2GiB": result["peak_rss_bytes"] < TARGET_PEAK_BYTES}
            if name in TARGET_SECONDS:
                checks[f"seconds_at_most_{TARGET_SECONDS[name]:g}"] = result["seconds"] <= TARGET_SECONDS[name]
            result["targets_met"] = checks
            results[name] = result
    return {
        "command": command,
        "version": __version__,
        **code_version(),
        "machine": _machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "timing": "seconds: wall time of tagdata.make_dataset in the child (spec to renamed file, "
                  "MNIST loading and writing included); process_seconds adds interpreter start-up",
        "peak_memory": PEAK_METHOD,
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_bytes": TARGET_PEAK_BYTES},
        "datasets": results,
    }


if __name__ == "__main__":
    _name, _out, _mnist = sys.argv[1:4]
    try:
        print(json.dumps(measure(_name, Path(_out), _mnist or None)))
    except UserError as _err:
        sys.exit(f"Error: {_err}")
