"""One training step of a population: P runs' costs as one batched computation, then Adam.

Every run is a population member; a single run is a population of one and takes the plain
path (its model called directly, no batching). For P > 1 the members' parameters are stacked
along a leading axis (``torch.stack``, so the gradients flow back to each member's own
tensors) and their costs computed in one call of ``torch.func.vmap(functional_call(...))``:
every matmul of the P models becomes one batched matmul with P times the work, and the
per-operation overhead of P separate runs is paid once. vmap over the existing modules was
chosen over hand-batched layers because each model (Tagger, FC MLP, FC Ladder, ConvNet) then
stays the one readable module that evaluation, checkpoints and ``load_run`` already use,
and each member keeps its own optimiser, learning rate and state dict.

What makes the members independent: each draws its data order and any labelled batch with its
own order generator (:meth:`Objective.inputs`, outside the batched call), and its corruption,
m^0 and layer noise from its own noise generator (:mod:`tagmodels.randomness`); BatchNorm's
running statistics are stacked per member too and copied back after the step.
"""

from __future__ import annotations

from typing import Callable, ContextManager, Protocol, Sequence

import torch
from torch.func import functional_call, vmap

from tagmodels import randomness


class Objective(Protocol):
    """What the loop trains: a model, the inputs and cost of a batch, a validation.

    ``inputs`` gathers a batch of training indices into tensors (examples, targets) and may
    draw from the loop's data-order generator (the labelled batch of a semi-supervised
    objective), so the checkpointed generator state makes resumed runs exact. ``cost`` must be
    a function of ``model`` and those tensors alone, drawing its noise through
    :mod:`tagmodels.randomness`: it is batched over population members.
    """

    model: torch.nn.Module

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]: ...

    def cost(self, model: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor: ...

    def validate(self) -> dict[str, float]: ...


class _Cost(torch.nn.Module):
    """An objective's cost as a module's forward, for ``functional_call`` to run with a
    member's parameters (named ``model.<name>``) swapped in."""

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective
        self.model = objective.model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.objective.cost(self.model, *inputs)


class PopulationCost:
    """The costs (P,) of P members on their batches, for members whose models share one
    architecture; member 0's modules run the batched call. ``batched`` False computes the
    members one after another instead, each exactly as it would alone (see :func:`batched_on`)."""

    def __init__(self, objectives: Sequence[Objective], noise: Sequence[torch.Generator], batched: bool = True) -> None:
        self.objectives, self.noise, self.batched = list(objectives), list(noise), batched
        self.template = _Cost(self.objectives[0])
        self.members = [_Cost(objective) for objective in self.objectives]
        self.vmapped = vmap(self._member_cost, randomness="same")  # draws are per member already

    def _member_cost(self, params: dict, buffers: dict, index: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        with randomness.member(index):
            return functional_call(self.template, (params, buffers), inputs)

    def __call__(self, batches: Sequence[torch.Tensor], orders: Sequence[torch.Generator]) -> torch.Tensor:
        inputs = [objective.inputs(batch, order) for objective, batch, order in zip(self.objectives, batches, orders)]
        if len(self.members) == 1 or not self.batched:
            return torch.stack([self._alone(objective, noise, member_inputs)
                                for objective, noise, member_inputs in zip(self.objectives, self.noise, inputs)])
        with randomness.streams(self.noise):
            params = _stacked([dict(member.named_parameters()) for member in self.members])
            with torch.no_grad():
                buffers = _stacked([dict(member.named_buffers()) for member in self.members])
            index = torch.arange(len(self.members), device=next(iter(params.values())).device)
            costs = self.vmapped(params, buffers, index, *(torch.stack(parts) for parts in zip(*inputs)))
        with torch.no_grad():  # BatchNorm's running statistics, updated in the stacked copies
            for i, member in enumerate(self.members):
                for name, buffer in member.named_buffers():
                    buffer.copy_(buffers[name][i])
        return costs

    @staticmethod
    def _alone(objective: Objective, noise: torch.Generator, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with randomness.streams([noise]):
            return objective.cost(objective.model, *inputs)


def batched_on(device: torch.device) -> bool:
    """Whether a population batches its members on ``device``: on accelerators, where P times
    the rows per matmul is what keeps the device busy. Not on CPUs, where a batched matmul of
    the paper's widths runs at about 0.7 of P separate ones and the per-operation overhead it
    saves is small (measured: results/speed/population-cpu.json), so members step one after
    another there, each exactly as it would alone."""
    return device.type not in ("cpu", "meta")


def _stacked(tables: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([table[name] for table in tables]) for name in tables[0]}


def train_step(
    optimizers: Sequence[torch.optim.Optimizer], cast: ContextManager, cost: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """One update of every member: the costs under ``cast`` (the precision's autocast), the
    gradients of their sum (each member's parameters get only their own cost's), Adam each."""
    with cast:
        value = cost()
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    value.sum().backward()
    for optimizer in optimizers:
        optimizer.step()
    return value


def train_epoch(
    cost: PopulationCost,
    optimizers: Sequence[torch.optim.Optimizer],
    cast: ContextManager,
    batches: Sequence[Sequence[torch.Tensor]],
    orders: Sequence[torch.Generator],
    after_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Every step of one epoch, reading nothing back from the device: an accelerator runs
    ahead of the host for the whole epoch. ``batches`` holds each member's index tensors (on
    the models' device); returns the costs (steps, P) on the device, for the caller to read
    once. ``after_step(step, costs)`` runs after each step (progress, thread sharing)."""
    costs = []
    for step, member_batches in enumerate(zip(*batches), start=1):
        value = train_step(optimizers, cast, lambda: cost(member_batches, orders)).detach()
        costs.append(value)
        if after_step is not None:
            after_step(step, value)
    return torch.stack(costs)
