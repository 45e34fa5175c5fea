"""The training loop every model shares: Adam, shuffled batches, a checkpoint per epoch,
for a population of P runs trained as one (:mod:`tagmodels.training.step`); a single run is
a population of one.

Resuming restores each member's parameters, optimiser, random streams and metric history
from its last checkpoint, so a run killed and resumed ends with exactly the parameters of a
run never interrupted (on the same device with the same thread count: the order of
floating-point sums depends on both). Nothing is read back from the device inside an epoch;
at its end, a member whose cost was non-finite in any step stops, keeping its last good
checkpoint, while the others train on; the best epoch by a validation figure is kept as best.pt.
A deadline (a time budget) stops the population after the epoch in which it passes, every
member at a checkpoint from which it resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from tagdata.errors import UserError
from tagmodels import randomness
from tagmodels.training.best import Selection, save_if_best
from tagmodels.training.divergence import TrainingDiverged, check_finite
from tagmodels.training.logs import RunLogs
from tagmodels.training.precision import autocast
from tagmodels.training.progress import TrainingProgress
from tagmodels.training.resume import repair_run_files
from tagmodels.training.runs import RunDir
from tagmodels.training.step import Objective, PopulationCost, batched_on, train_epoch
from tagmodels.training.threads import CoreShare


ADAM_BETAS = (0.9, 0.999)  # Adam's decay rates of its gradient moments (Kingma & Ba's defaults)


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
    betas: tuple[float, float] = ADAM_BETAS

    def lr_at(self, epoch: int) -> float:
        """The learning rate of zero-based ``epoch``."""
        if self.decay_from is None or epoch < self.decay_from:
            return self.lr
        return self.lr * (self.epochs - epoch) / (self.epochs - self.decay_from)


def adam(model: torch.nn.Module, lr: float, betas: tuple[float, float] = ADAM_BETAS) -> torch.optim.Adam:
    """The optimiser of every run. The fused Adam step (one kernel over all parameters) is
    several times faster than the per-tensor loop and computes the same update. ``betas``
    are kept in its state dict, so a resumed run holds them."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=True)


@dataclass
class Member:
    """One run of a population: what it trains, its schedule (seed, learning rate) and where it writes."""

    objective: Objective
    schedule: Schedule
    run: RunDir


@dataclass
class Trained:
    """A member's outcome: its history, the divergence that stopped it early, if any, and
    whether a deadline stopped it before its last epoch (it resumes from its checkpoint)."""

    history: list[dict[str, Any]]
    diverged: TrainingDiverged | None = None
    cut: bool = False


@dataclass
class _State:
    """A member while it trains: its optimiser, random streams, history and log files."""

    member: Member
    optimizer: torch.optim.Optimizer
    order: torch.Generator  # data order and labelled draws, on the host
    noise: torch.Generator  # corruption, m^0, layer noise, on the model's device
    history: list[dict[str, Any]] = field(default_factory=list)
    logs: RunLogs | None = None
    diverged: TrainingDiverged | None = None

    @classmethod
    def start(cls, member: Member, device: torch.device, resume: bool, keep_best: Selection | None) -> "_State":
        """A fresh member seeded by its schedule, or one restored from its last checkpoint."""
        model, seed = member.objective.model, member.schedule.seed
        state = cls(member, adam(model, member.schedule.lr, member.schedule.betas), torch.Generator().manual_seed(seed),
                    randomness.generator(device, seed))
        member.run.remove_stale_temporaries()
        checkpoint = member.run.load_checkpoint() if resume else None
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            state.optimizer.load_state_dict(checkpoint["optimizer"])
            state.order.set_state(checkpoint["rng"]["order"])
            state.noise.set_state(_noise_state(checkpoint["rng"], member.run, device))
            state.history = checkpoint["history"]
            repair_run_files(member.run, state.history, keep_best, model)
        state.logs = RunLogs(member.run, first_epoch=len(state.history))
        return state

    def batches(self, epoch: int, n_train: int, device: torch.device) -> list[torch.Tensor]:
        """The epoch's index batches, with its learning rate set. The order is drawn on the
        host (its generator's state makes resumes exact) and moved to the device at once."""
        self.member.objective.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.member.schedule.lr_at(epoch)
        order = torch.randperm(n_train, generator=self.order).to(device)
        return list(order.split(self.member.schedule.batch_size))

    def end_epoch(self, epoch: int, costs: list[float], seconds: float, cast: Any) -> bool:
        """Check the epoch's step costs, then validate and add the epoch's row; False when
        the member diverged (it stops, its last checkpoint kept)."""
        schedule, run = self.member.schedule, self.member.run
        try:
            for step, value in enumerate(costs, start=1):
                check_finite(value, epoch + 1, step, run, schedule.lr_at(epoch))
        except TrainingDiverged as error:
            self.diverged = error
            return False
        with cast:
            validation = self.member.objective.validate()
        row = {"epoch": epoch + 1, "lr": schedule.lr_at(epoch), "cost": sum(costs) / len(costs), **validation}
        row["seconds"] = round(seconds, 3)
        self.history.append(row)
        return True

    def save(self, keep_best: Selection | None) -> None:
        """The epoch's checkpoint, then best.pt and the metric files, which it may repair."""
        run, model = self.member.run, self.member.objective.model
        run.save_checkpoint({
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"order": self.order.get_state(), "noise": self.noise.get_state()},
            "history": self.history,
        })
        save_if_best(run, keep_best, self.history, model)
        assert self.logs is not None
        self.logs.write(self.history)


def _noise_state(rng: dict[str, Any], run: RunDir, device: torch.device) -> torch.Tensor:
    """A checkpoint's noise-generator state. Checkpoints written before runs had their own
    noise generator drew it from torch's global CPU stream, saved as "torch": on a CPU that
    state continues the same stream."""
    if "noise" in rng:
        return rng["noise"]
    if device.type == "cpu" and "torch" in rng:
        return rng["torch"]
    raise UserError(f"{run.checkpoint_path} was written by an older version on the CPU; resume it with --device cpu")


def _check_population(members: Sequence[Member]) -> None:
    first = members[0].schedule
    for member in members[1:]:
        if (member.schedule.epochs, member.schedule.batch_size) != (first.epochs, first.batch_size):
            raise ValueError("the members of a population must share their epochs and batch size")


def fit_population(
    members: Sequence[Member],
    n_train: int,
    resume: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    keep_best: Selection | None = None,
    adapt_threads: bool = False,
    batched: bool | None = None,
    deadline: float | None = None,
) -> list[Trained]:
    """Train every member for its ``schedule.epochs`` epochs on ``n_train`` examples as one
    batched computation, writing each member's metrics and checkpoint after each epoch (and
    best.pt whenever ``keep_best``'s validation figure improves).

    The members' models share one architecture; they differ in their seeds (initial
    parameters, built by the caller; data order; noise) and learning rates. A member that a
    kill left an epoch behind the others (resume) trains alone until it has caught up.
    ``precision`` "bf16" runs the costs and the validation under bf16 autocast; ``compile``
    compiles each member's forward in place (its state dict is unchanged, so checkpoints load
    either way); the members' models are one architecture, so the graphs compiled for the
    first are reused by the others. ``adapt_threads`` lets a CPU run follow the cores other
    processes leave free (:class:`tagmodels.training.threads.CoreShare`). ``batched`` chooses
    between one batched computation of all members and one member after another; None: as
    :func:`tagmodels.training.step.batched_on` says for the device. ``deadline`` (a
    ``time.perf_counter()`` value) stops the population after the epoch that ends past it.
    """
    _check_population(members)
    device = next(members[0].objective.model.parameters()).device
    batched = batched_on(device) if batched is None else batched
    cast = autocast(precision, device)
    share = CoreShare() if adapt_threads and device.type == "cpu" else None
    states = [_State.start(member, device, resume, keep_best) for member in members]
    if compile:  # the members share one architecture, so the first member's graphs serve all of them
        for member in members:
            member.objective.model.compile()
    epochs = members[0].schedule.epochs
    report = TrainingProgress(epochs, first=min(len(state.history) for state in states), enabled=progress)

    def after_step(step: int, costs: torch.Tensor) -> None:
        report.step(step, costs.mean())
        if share is not None:
            share.adjust()

    for epoch in range(report.first, epochs):
        active = [state for state in states if state.diverged is None and len(state.history) == epoch]
        if not active:
            continue
        started = time.perf_counter()
        batches = [state.batches(epoch, n_train, device) for state in active]
        cost = PopulationCost([state.member.objective for state in active], [state.noise for state in active], batched)
        costs = train_epoch(
            cost, [state.optimizer for state in active], cast, [report.batches(batches[0], epoch), *batches[1:]],
            [state.order for state in active], after_step,
        ).T.tolist()
        seconds = time.perf_counter() - started
        # Every member validates before any saves, so the saves follow each other closely: a
        # kill between two of them leaves the members an epoch apart, and the one behind then
        # catches up in a smaller population, equal to the uninterrupted run only to rounding.
        finished = [state for state, member_costs in zip(active, costs) if state.end_epoch(epoch, member_costs, seconds, cast)]
        for state in finished:
            state.save(keep_best)
            report.epoch_done(state.history[-1], state.member.run.path.name if len(states) > 1 else None)
        if deadline is not None and time.perf_counter() >= deadline:
            break
    for state in states:
        assert state.logs is not None
        state.logs.close()
    return [Trained(state.history, state.diverged, state.diverged is None and len(state.history) < epochs)
            for state in states]


def fit(objective: Objective, n_train: int, schedule: Schedule, run: RunDir, **options: Any) -> list[dict[str, Any]]:
    """Train one run (a population of one; options as :func:`fit_population`); a divergence
    raises :class:`TrainingDiverged`, the last good checkpoint kept."""
    (trained,) = fit_population([Member(objective, schedule, run)], n_train, **options)
    if trained.diverged is not None:
        raise trained.diverged
    return trained.history


def training_seconds(history: list[dict[str, Any]]) -> float:
    """Seconds spent training over all epochs of a history, across resumes."""
    return round(sum(row["seconds"] for row in history), 3)
