"""Numeric precision of a training run, and the line that says how a command computes.

bf16 autocast runs the matmuls in bfloat16 (weights, optimiser and the TAG arithmetic the
autocast leaves in float32 stay fp32): 7 times the fp32 matmul rate on CPUs with AMX, and
native on CUDA. It is the default there and only there: with AVX512-BF16 but no AMX,
torch's bf16 matmuls ran at 0.61 times the fp32 rate and shapes-paper trained at 0.69 times
its fp32 speed (results/speed/train-shapes-paper-avx512bf16-only.json), and without either
bf16 is emulated.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from tagdata.errors import UserError
from tagdata.provenance import cpu_flags, onednn_isa_cap
from tagmodels.training.precision_names import PRECISIONS, Precision  # noqa: F401  (re-exported)
from tagmodels.training.threads import resolve_threads


def amx_usable() -> bool:
    """The CPU has AMX-BF16 and ONEDNN_MAX_CPU_ISA (when set) leaves it to the matmuls."""
    cap = (onednn_isa_cap() or "ALL").upper()
    return cpu_flags()["amx_bf16"] and ("AMX" in cap or cap in ("ALL", "DEFAULT"))


def default_precision(device: torch.device) -> str:
    """bf16 where it is faster than fp32 (CUDA, CPUs with AMX), else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if amx_usable() else "fp32"


def resolve_precision(name: str | None, device: torch.device) -> str:
    """``name`` checked, or the default for ``device`` when it is None or "auto"."""
    if name in (None, "auto"):
        return default_precision(device)
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}: choose auto, {' or '.join(PRECISIONS)}")
    return name


def matmul_dtype(precision: str) -> torch.dtype:
    """The dtype the network's matmuls run in under a precision."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The autocast context of a precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=matmul_dtype(precision))


def set_threads(device: torch.device, threads: int | str | None) -> None:
    """Set the CPU thread count of a command (nothing to set on an accelerator)."""
    if device.type == "cpu":
        torch.set_num_threads(resolve_threads(threads))


def configure(device: torch.device, precision: str | None, threads: int | str | None) -> str:
    """Set the CPU thread count and resolve the precision of a command."""
    set_threads(device, threads)
    return resolve_precision(precision, device)


def describe(device: torch.device, precision: str, compile: bool) -> str:
    """One line saying how a command computes: precision, compilation, device, threads."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        flags = ", ".join(name for name, present in cpu_flags().items() if present) or "no bf16 features"
        cap = onednn_isa_cap()
        if cap:
            flags += f"; oneDNN capped at {cap}"
        where = f"CPU ({flags}), {torch.get_num_threads()} threads"
    return f"precision {precision}{', compiled' if compile else ''} on {where}"
