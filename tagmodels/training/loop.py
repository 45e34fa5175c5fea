"""The training loop every model shares: Adam, shuffled batches, a checkpoint per epoch.

Resuming restores the parameters, the optimiser, the random streams and the metric
history from the last checkpoint, so a run killed and resumed ends with exactly the
parameters of a run never interrupted (on the same device with the same thread count:
the order of floating-point sums depends on both). Nothing is read back from the device
inside an epoch; at its end, a non-finite cost in any step stops training and keeps the
last good checkpoint; the best epoch by a validation figure is kept as best.pt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Protocol

import torch

from tagmodels.training.best import Selection, save_if_best
from tagmodels.training.divergence import check_finite
from tagmodels.training.logs import RunLogs
from tagmodels.training.precision import autocast
from tagmodels.training.progress import TrainingProgress
from tagmodels.training.resume import repair_run_files
from tagmodels.training.runs import RunDir
from tagmodels.training.threads import CoreShare


class Objective(Protocol):
    """What the loop trains: a model, the cost of a batch of training indices, a validation.

    ``cost`` receives the loop's data-order generator too: any extra sampling it does (the
    labelled batch of a semi-supervised objective, say) must draw from it, so that the
    checkpointed generator state makes resumed runs exact.
    """

    model: torch.nn.Module

    def cost(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...

    def validate(self) -> dict[str, float]: ...


@dataclass
class Schedule:
    """How long and how fast to train.

    The learning rate is ``lr`` until epoch ``decay_from`` (zero-based), then falls linearly
    towards 0 over the remaining epochs (Rasmus et al.'s Ladder schedule: 100 epochs at
    0.002, then 50 of linear decay); None keeps it constant. It is a function of the epoch
    alone, so a resumed run follows it exactly.
    """

    epochs: int
    lr: float
    batch_size: int
    seed: int
    decay_from: int | None = None

    def lr_at(self, epoch: int) -> float:
        """The learning rate of zero-based ``epoch``."""
        if self.decay_from is None or epoch < self.decay_from:
            return self.lr
        return self.lr * (self.epochs - epoch) / (self.epochs - self.decay_from)


def _rng_state(order: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "order": order.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], order: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    order.set_state(state["order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """The optimiser of every run. The fused Adam step (one kernel over all parameters) is
    several times faster than the per-tensor loop and computes the same update."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def train_step(optimizer: torch.optim.Optimizer, cast: ContextManager, cost: Callable[[], torch.Tensor]) -> torch.Tensor:
    """One update: the cost under ``cast`` (the precision's autocast), its gradients, Adam."""
    with cast:
        value = cost()
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value


def train_epoch(
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    cast: ContextManager,
    batches: Iterable[torch.Tensor],
    order: torch.Generator,
    after_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Every step of one epoch over ``batches`` (index tensors on the model's device), reading
    nothing back from the device: an accelerator runs ahead of the host for the whole epoch.
    Returns the costs of the steps (steps,) on the device, for the caller to read once.
    ``after_step(step, cost)`` runs after each step (progress, thread sharing)."""
    costs = []
    for step, batch in enumerate(batches, start=1):
        cost = train_step(optimizer, cast, lambda: objective.cost(batch, order)).detach()
        costs.append(cost)
        if after_step is not None:
            after_step(step, cost)
    return torch.stack(costs)


def fit(
    objective: Objective,
    n_train: int,
    schedule: Schedule,
    run: RunDir,
    resume: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    keep_best: Selection | None = None,
    adapt_threads: bool = False,
) -> list[dict[str, Any]]:
    """Train for ``schedule.epochs`` epochs, writing metrics and a checkpoint after each one
    (and best.pt whenever ``keep_best``'s validation figure improves).

    ``precision`` "bf16" runs the costs and the validation under bf16 autocast;
    ``compile`` compiles the model's forward in place (its state dict is unchanged, so
    checkpoints load either way). ``adapt_threads`` lets a CPU run follow the cores other
    processes leave free (:class:`tagmodels.training.threads.CoreShare`).
    """
    model = objective.model
    device = next(model.parameters()).device
    optimizer = adam(model, schedule.lr)
    if compile:
        model.compile()
    cast = autocast(precision, device)
    share = CoreShare() if adapt_threads and device.type == "cpu" else None
    order = torch.Generator().manual_seed(schedule.seed)
    history: list[dict[str, Any]] = []
    run.remove_stale_temporaries()
    checkpoint = run.load_checkpoint() if resume else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        _restore_rng(checkpoint["rng"], order)
        history = checkpoint["history"]
        repair_run_files(run, history, keep_best, model)
    logs = RunLogs(run, first_epoch=len(history))
    report = TrainingProgress(schedule.epochs, first=len(history), enabled=progress)

    def after_step(step: int, cost: torch.Tensor) -> None:
        report.step(step, cost)
        if share is not None:
            share.adjust()

    for epoch in range(len(history), schedule.epochs):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(epoch)
        started = time.perf_counter()
        # The order is drawn on the CPU (its generator's state makes resumes exact) and moved
        # to the device once per epoch; the costs are read back once, at the epoch's end.
        batches = torch.randperm(n_train, generator=order).to(device).split(schedule.batch_size)
        costs = train_epoch(objective, optimizer, cast, report.batches(batches, epoch), order, after_step).tolist()
        for step, value in enumerate(costs, start=1):
            check_finite(value, epoch + 1, step, run, schedule.lr_at(epoch))
        total = sum(costs)
        train_seconds = time.perf_counter() - started
        with cast:
            validation = objective.validate()
        row = {"epoch": epoch + 1, "lr": schedule.lr_at(epoch), "cost": total / len(batches), **validation}
        row["seconds"] = round(train_seconds, 3)
        history.append(row)
        run.save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(order),
                "history": history,
            }
        )
        save_if_best(run, keep_best, history, model)
        logs.write(history)
        report.epoch_done(row)
    logs.close()
    return history


def training_seconds(history: list[dict[str, Any]]) -> float:
    """Seconds spent training over all epochs of a history, across resumes."""
    return round(sum(row["seconds"] for row in history), 3)
