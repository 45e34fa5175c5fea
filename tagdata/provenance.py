"""Where a result came from: the toolkit's commit and the machine it ran on.

Every result file (dataset benchmarks, training runs, evaluations, the Table 2 grid)
records these beside its figures, so a number can always be traced to the code and the
hardware that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str | None:
    """Output of a git command in the toolkit's checkout; None outside one."""
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=_CHECKOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def portable_path(path: str | Path) -> str:
    """A path as result files record it: relative to the working directory, so that no
    committed figure names one machine's directory layout."""
    return os.path.relpath(Path(path).resolve())


def portable_command(argv: list[str]) -> str:
    """The command line as result files record it: absolute paths made relative."""
    def portable(arg: str) -> str:
        if arg.startswith("/"):
            return portable_path(arg)
        option, equals, value = arg.partition("=")
        return f"{option}={portable_path(value)}" if equals and value.startswith("/") else arg

    return " ".join(portable(arg) for arg in argv)


def code_version() -> dict[str, object]:
    """The commit, and whether tracked code differed from it (None outside git).

    Changes under results/ do not count: measurements write there while they run.
    """
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results") if commit else None
    return {"commit": commit, "worktree_dirty": None if status is None else bool(status)}


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU features that make bf16 matmuls fast


def cpu_flags() -> dict[str, bool]:
    """Which of the bf16 CPU features (AMX, AVX512-BF16) this processor reports."""
    try:
        flags = next(
            (line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("flags")),
            [],
        )
    except OSError:
        flags = []
    return {flag: flag in flags for flag in BF16_FLAGS}


def onednn_isa_cap() -> str | None:
    """ONEDNN_MAX_CPU_ISA when set: torch's CPU matmuls (oneDNN) then use no instruction set
    above it, so ``AVX512_CORE_BF16`` runs an AMX machine as one with AVX512-BF16 only."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or None


def bf16_features() -> dict[str, object]:
    """What decides how fast bf16 matmuls run here, as speed results record it."""
    return {"cpu_flags": cpu_flags(), "onednn_max_cpu_isa": onednn_isa_cap()}


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
