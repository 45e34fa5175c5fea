"""Choosing the compute device: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch

from tagdata.errors import UserError


def resolve_device(name: str | None = None) -> torch.device:
    """The device named (``cpu``, ``cuda``, ``cuda:1``), or the best one present."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use cpu or cuda[:index]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but this machine has no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}: use cpu or cuda[:index]")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        present = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise UserError(f"device {name!r} is not present: this machine's CUDA devices are {present}")
    return device
