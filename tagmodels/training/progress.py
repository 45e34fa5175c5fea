"""What a training run prints: a bar per epoch on a terminal, a plain line per epoch always,
each with the overall time left (ETA) estimated from the epochs trained so far."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import torch
from tqdm import tqdm

from tagdata.terminal import bar_size

POSTFIX_SECONDS = 1.0  # how often a shown bar reads the running cost back from the device


def duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: hours only when there are some."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def epoch_line(row: dict[str, Any], epochs: int, eta: float | None) -> str:
    """The plain per-epoch line: the epoch's numbers, then the time left."""
    figures = [
        f"{key} {value:.4g}" for key, value in row.items()
        if key not in ("epoch", "seconds") and isinstance(value, (int, float))
    ]
    line = f"epoch {row['epoch']}/{epochs}: " + ", ".join(figures) + f" ({row['seconds']:.1f} s"
    return line + (f", ETA {duration(eta)})" if eta is not None else ")")


class TrainingProgress:
    """Progress of :func:`tagmodels.training.loop.fit` from epoch ``first`` to ``epochs``."""

    def __init__(self, epochs: int, first: int, enabled: bool = True) -> None:
        self.epochs, self.first, self.enabled = epochs, first, enabled
        self.started = time.perf_counter()
        self.bar: tqdm | None = None
        self.total: torch.Tensor | None = None
        self.postfix_read = 0.0

    def eta(self, epochs_done: float) -> float | None:
        """Seconds left, from the mean time of the epochs trained by this process."""
        trained = epochs_done - self.first
        if trained <= 0:
            return None
        return (time.perf_counter() - self.started) / trained * (self.epochs - epochs_done)

    def batches(self, batches: Sequence[torch.Tensor], epoch: int) -> Iterable[torch.Tensor]:
        """One epoch's batches; on a terminal, under a bar (``disable=None``: tqdm shows it
        on a terminal only, logs get :meth:`epoch_done`'s line)."""
        self.epoch, self.steps = epoch, len(batches)
        self.bar = tqdm(batches, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                        disable=None if self.enabled else True, **bar_size())
        return self.bar

    def step(self, step: int, cost: torch.Tensor) -> None:
        """After a step: the epoch's mean cost so far and the overall time left, on the bar.

        ``cost`` (the step's, on the model's device) is summed where it lies and read at most
        once every POSTFIX_SECONDS: each read makes the host wait for an accelerator."""
        if self.bar is None or self.bar.disable:
            return
        self.total = cost if step == 1 else self.total + cost
        now = time.perf_counter()
        if step > 1 and now - self.postfix_read < POSTFIX_SECONDS:
            return
        self.postfix_read = now
        eta = self.eta(self.epoch + step / self.steps)
        mean_cost = float(self.total) / step
        self.bar.set_postfix_str(f"cost {mean_cost:.4f}" + (f", ETA {duration(eta)}" if eta is not None else ""),
                                 refresh=False)

    def epoch_done(self, row: dict[str, Any]) -> None:
        """The plain line of a finished epoch (printed whether or not a bar was shown)."""
        if self.bar is not None:
            self.bar.close()
        if self.enabled:
            tqdm.write(epoch_line(row, self.epochs, self.eta(row["epoch"])))


@contextmanager
def forward_progress(model: torch.nn.Module, total: int, desc: str, enabled: bool = True) -> Iterator[None]:
    """A terminal bar counting the examples ``model`` processes (by a forward hook), for
    routines that call the model batch by batch and report nothing themselves."""
    with tqdm(total=total, desc=desc, unit="ex", leave=False, disable=None if enabled else True, **bar_size()) as bar:

        def count(module: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            bar.update(len(inputs[0]))  # returns None: a hook's return value would replace the output

        handle = model.register_forward_hook(count)
        try:
            yield
        finally:
            handle.remove()
