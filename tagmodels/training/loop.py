"""The training loop every model shares: Adam, shuffled batches, a checkpoint per epoch.

Resuming restores the parameters, the optimiser, the random streams and the metric
history from the last checkpoint, so a run killed and resumed ends with exactly the
parameters of a run never interrupted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm import tqdm

from tagmodels.training.precision import autocast
from tagmodels.training.runs import RunDir


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


def fit(
    objective: Objective,
    n_train: int,
    schedule: Schedule,
    run: RunDir,
    resume: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    compile: bool = False,
) -> list[dict[str, Any]]:
    """Train for ``schedule.epochs`` epochs, writing metrics and a checkpoint after each one.

    ``precision`` "bf16" runs the costs and the validation under bf16 autocast;
    ``compile`` compiles the model's forward in place (its state dict is unchanged, so
    checkpoints load either way).
    """
    model = objective.model
    device = next(model.parameters()).device
    # The fused Adam step (one kernel over all parameters) is several times faster than the
    # per-tensor loop and computes the same update.
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr, fused=True)
    if compile:
        model.compile()
    cast = autocast(precision, device)
    order = torch.Generator().manual_seed(schedule.seed)
    history: list[dict[str, Any]] = []
    run.remove_stale_temporaries()
    checkpoint = run.load_checkpoint() if resume else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        _restore_rng(checkpoint["rng"], order)
        history = checkpoint["history"]
    for epoch in range(len(history), schedule.epochs):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(epoch)
        started = time.perf_counter()
        batches = torch.randperm(n_train, generator=order).split(schedule.batch_size)
        total = 0.0
        # disable=None: the bar shows on a terminal only; logs get the one line per epoch below.
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{schedule.epochs}", disable=None if progress else True, leave=False)
        for step, batch in enumerate(bar, start=1):
            with cast:
                cost = objective.cost(batch, order)
            optimizer.zero_grad(set_to_none=True)
            cost.backward()
            optimizer.step()
            total += cost.item()
            bar.set_postfix(cost=f"{total / step:.4f}")
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
        run.write_metrics(history)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return history


def training_seconds(history: list[dict[str, Any]]) -> float:
    """Seconds spent training over all epochs of a history, across resumes."""
    return round(sum(row["seconds"] for row in history), 3)
