"""The CUDA bugs a CPU can catch (issue 16, part 2): every model's training step run on the meta
device under the host-sync trap, the trap shown to catch each kind of bug, and the training
loop reading the device once per epoch, not once per step."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from tagmodels.gpu.steps import CASES, POPULATIONS, StepCase, check_case, fit_host_reads
from tagmodels.training.host_sync import DeviceTrap

META = torch.device("meta")


@pytest.mark.parametrize("members", POPULATIONS)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_training_step_creates_nothing_off_the_device_and_never_waits_for_it(case, members):
    assert [str(v) for v in check_case(case, META, members=members)] == []


class Buggy:
    """The binary Tagger's objective with one device bug added to its cost."""

    def __init__(self, bug: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.inner = CASES[0].build(META)
        self.model, self.bug = self.inner.model, bug

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return self.inner.inputs(batch, generator)

    def cost(self, model: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        return self.bug(self.inner.cost(model, *inputs))

    def validate(self) -> dict[str, float]:
        return {}


def _index_on_host(cost: torch.Tensor) -> torch.Tensor:
    return cost + torch.zeros(2, device=cost.device)[torch.tensor([0, 1])].sum()


def _finite_check(cost: torch.Tensor) -> torch.Tensor:
    if torch.isfinite(cost):
        return cost
    raise AssertionError


BUGS = {
    "item": (lambda cost: cost * cost.item(), "reads a value on the host"),
    "branch on a tensor": (_finite_check, "reads a value on the host"),
    "tensor created on the host": (lambda cost: (cost * torch.ones(1)).sum(), "mixes a host tensor"),
    "host index": (_index_on_host, "mixes a host tensor"),
    "cpu()": (lambda cost: cost.cpu(), "copies to the host"),
    "blocking copy": (lambda cost: cost * torch.ones(3).to(cost.device).sum(), "blocking copy from the host"),
    "numpy": (lambda cost: cost * float(cost.detach().numpy()), "fails on the device"),
    "tolist": (lambda cost: cost * cost.detach().tolist(), "copies to the host"),
}


@pytest.mark.parametrize("name", BUGS)
def test_trap_names_each_kind_of_device_bug_and_its_line(name):
    bug, kind = BUGS[name]
    violations = check_case(StepCase(name, lambda device: Buggy(bug)), META)
    assert violations, f"{name} went unnoticed"
    assert violations[0].kind.startswith(kind), violations
    assert "tests/test_device_clean.py" in violations[0].where, violations[0]


def test_non_blocking_copies_and_host_scalars_are_allowed():
    x = torch.zeros(3, device=META)
    with DeviceTrap(META) as trap:
        y = x * torch.tensor(2.0) + torch.arange(3).to(META, non_blocking=True)
        torch.randint(5, (4,), generator=torch.Generator().manual_seed(0))  # host sampling stays on the host
    assert y.device == META and trap.violations == []


def test_fit_reads_the_device_once_per_epoch_whatever_the_number_of_steps(tmp_path):
    assert fit_host_reads(torch.device("cpu"), 2, tmp_path) == fit_host_reads(torch.device("cpu"), 12, tmp_path)
