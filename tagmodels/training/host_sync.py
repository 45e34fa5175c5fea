"""A trap for the usual accelerator bugs of a training step, usable without an accelerator.

An accelerator runs ahead of the Python process only while nothing makes the host wait for
it. Inside a training step three things do (each one a "violation" here):

- reading a value on the host (``.item()``, ``float()``, ``bool()``, ``if tensor:``): the
  dispatcher's ``aten._local_scalar_dense`` on a tensor of the device;
- copying to the host (``.cpu()``, ``.numpy()`` and ``.tolist()`` go through such a copy on
  an accelerator), or a blocking copy from the host (``.to(device)`` without
  ``non_blocking=True`` waits for the device's queue on CUDA);
- mixing a host tensor with more than one element into an operation on the device (an index
  tensor created without ``device=``): CUDA copies it implicitly, and most operations refuse it.

:class:`DeviceTrap` watches every operation the dispatcher runs (autograd's backward
included) and records these. On CPU alone, run the step on the ``meta`` device: it computes
shapes only, so a model and its data fit anywhere, a tensor created without the right device
lands on the CPU where the trap sees it, and ``.numpy()``/``.tolist()`` raise on their own.
On CUDA the same trap runs beside ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

PROJECT = Path(__file__).resolve().parents[2]  # the repository, in an editable install
NOT_OURS = (Path(torch.__file__).resolve().parent, Path(sysconfig.get_paths()["stdlib"]).resolve())
COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default, torch.ops.aten._copy_from.default}


@dataclass
class Violation:
    """One operation that would make the host wait for the device, and where our code asked for it."""

    kind: str
    op: str
    where: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.op}) at {self.where}"


def project_line(frames: list[traceback.FrameSummary]) -> str:
    """The innermost of ``frames`` in our code (not torch's, Python's or this module's):
    file:line (code), the file relative to the repository when it lies there."""
    for frame in reversed(frames):
        if frame.filename.startswith("<"):  # <frozen ...>, <string>: no file of ours
            continue
        path = Path(frame.filename).resolve()
        if path == Path(__file__).resolve() or any(path.is_relative_to(skip) for skip in NOT_OURS):
            continue
        shown = path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path
        return f"{shown}:{frame.lineno} ({frame.line})"
    return "outside our code"


def _tensors(value: object) -> list[torch.Tensor]:
    return [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]


class DeviceTrap(TorchDispatchMode):
    """Records :class:`Violation` s of the operations run under it for tensors of ``device``."""

    def __init__(self, device: torch.device | str) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.violations: list[Violation] = []

    def _on_device(self, tensor: torch.Tensor) -> bool:
        return tensor.device.type == self.device.type

    def _record(self, kind: str, func: object) -> None:
        self.violations.append(Violation(kind, str(func), project_line(traceback.extract_stack())))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        # Checked before the operation runs: on meta, reading or copying out raises.
        kwargs = kwargs or {}
        inputs = _tensors((args, kwargs))
        if func is torch.ops.aten._local_scalar_dense.default:
            if self._on_device(inputs[0]):
                self._record("reads a value on the host", func)
        elif func in COPIES:
            self._check_copy(func, args, kwargs)
        elif any(self._on_device(t) for t in inputs) and any(not self._on_device(t) and t.dim() > 0 for t in inputs):
            self._record("mixes a host tensor into a device operation", func)
        return func(*args, **kwargs)

    def _check_copy(self, func: object, args: tuple, kwargs: dict) -> None:
        copy_ = func is torch.ops.aten.copy_.default
        source = args[1] if copy_ else args[0]
        if not isinstance(source, torch.Tensor):  # a Python number (vmap copies them in): nothing to wait for
            return
        if func is torch.ops.aten._to_copy.default:
            target = torch.device(kwargs.get("device") or source.device)
            blocking = not kwargs.get("non_blocking", False)
        else:  # copy_(self, src, non_blocking) and _copy_from(self, dst, non_blocking)
            target = args[0].device if copy_ else args[1].device
            blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
        to_device = target.type == self.device.type
        if self._on_device(source) and not to_device:
            self._record("copies to the host", func)
        elif not self._on_device(source) and to_device and blocking:
            self._record("blocking copy from the host", func)
