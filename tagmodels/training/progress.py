"""What a training run prints: a bar per epoch on a terminal, a plain line per epoch always,
each with the overall time left (ETA) estimated from the epochs trained so far; early in a
run, how long its training will take at the measured speed; and in a log (no terminal),
where a bar cannot show, a plain line about once a minute within an epoch.

Everything here is timed by the wall clock and the step count: nothing is read back from
the device for it (on an accelerator the first figures are the host's, until its queue fills).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from tqdm import tqdm

from tagdata.terminal import bar_size

POSTFIX_SECONDS = 1.0  # how often a shown bar reads the running cost back from the device
PLAIN_SECONDS = 60.0  # how often a log gets a line within an epoch
ESTIMATE_SECONDS = 2.0  # steps timed (after the first, which warms up) before the start's estimate


def duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: hours only when there are some."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rough_duration(seconds: float) -> str:
    """``40 s``, ``12 min`` or ``3.2 h``: what a person plans with."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def epoch_line(row: dict[str, Any], epochs: int, eta: float | None) -> str:
    """The plain per-epoch line: the epoch's numbers, then the time left."""
    figures = [
        f"{key} {value:.4g}" for key, value in row.items()
        if key not in ("epoch", "seconds") and isinstance(value, (int, float))
    ]
    line = f"epoch {row['epoch']}/{epochs}: " + ", ".join(figures) + f" ({row['seconds']:.1f} s"
    return line + (f", ETA {duration(eta)})" if eta is not None else ")")


class TrainingProgress:
    """Progress of :func:`tagmodels.training.loop.fit` from epoch ``first`` to ``epochs``.

    ``clock`` (seconds) and ``write`` (one line) are injectable, for tests."""

    def __init__(
        self, epochs: int, first: int, enabled: bool = True,
        clock: Callable[[], float] = time.perf_counter, write: Callable[[str], None] = tqdm.write,
    ) -> None:
        self.epochs, self.first, self.enabled = epochs, first, enabled
        self.clock, self.write = clock, write
        self.started = clock()
        self.bar: tqdm | None = None
        self.total: torch.Tensor | None = None
        self.postfix_read = 0.0
        self.timing: tuple[float, int] | None = None  # (time, step) the start's estimate counts from
        self.estimated = False

    def eta(self, epochs_done: float) -> float | None:
        """Seconds left, from the mean time of the epochs trained by this process."""
        trained = epochs_done - self.first
        if trained <= 0:
            return None
        return (self.clock() - self.started) / trained * (self.epochs - epochs_done)

    def batches(self, batches: Sequence[torch.Tensor], epoch: int) -> Iterable[torch.Tensor]:
        """One epoch's batches; on a terminal, under a bar (``disable=None``: tqdm shows it
        on a terminal only, logs get :meth:`epoch_done`'s line and the plain lines)."""
        self.epoch, self.steps = epoch, len(batches)
        self.batch_size = len(batches[0]) if len(batches) else 0  # a shape: no device read
        self.examples = sum(len(batch) for batch in batches)
        self.epoch_started = self.clock()
        self.plain_at = self.epoch_started + PLAIN_SECONDS
        self.bar = tqdm(batches, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                        disable=None if self.enabled else True, **bar_size())
        return self.bar

    def step(self, step: int, cost: torch.Tensor) -> None:
        """After a step: the start's estimate and a log's plain lines (by the clock and the step
        count), and the epoch's mean cost so far and the overall time left, on the bar.

        ``cost`` (the step's, on the model's device) is summed where it lies and read at most
        once every POSTFIX_SECONDS: each read makes the host wait for an accelerator."""
        if not self.enabled:
            return
        now = self.clock()
        self._estimate(step, now)
        if self.bar is None or self.bar.disable:
            self._plain_line(step, now)
            return
        self.total = cost if step == 1 else self.total + cost
        if step > 1 and now - self.postfix_read < POSTFIX_SECONDS:
            return
        self.postfix_read = now
        eta = self.eta(self.epoch + step / self.steps)
        mean_cost = float(self.total) / step
        self.bar.set_postfix_str(f"cost {mean_cost:.4f}" + (f", ETA {duration(eta)}" if eta is not None else ""),
                                 refresh=False)

    def _estimate(self, step: int, now: float) -> None:
        """Once, in the first epoch this process trains: how long the run's training takes at
        the speed of the steps after the first (which pays for warm-up and compilation)."""
        if self.estimated or self.epoch != self.first:
            return
        if self.timing is None:
            self.timing = (now, step)
            return
        since, from_step = self.timing
        if now - since < ESTIMATE_SECONDS and step < self.steps:
            return
        self.estimated = True
        rate = (step - from_step) * self.batch_size / max(now - since, 1e-9)
        epochs = self.epochs - self.first
        self.write(f"about {rough_duration(epochs * self.examples / rate)} of training for {epochs} "
                   f"epoch{'s' if epochs != 1 else ''} at {rate:.0f} samples/s")

    def _plain_line(self, step: int, now: float) -> None:
        """In a log, about once every PLAIN_SECONDS: how far the epoch is, its speed and the time left."""
        if now < self.plain_at:
            return
        self.plain_at = now + PLAIN_SECONDS
        done = min(step * self.batch_size, self.examples)
        rate = done / max(now - self.epoch_started, 1e-9)
        eta = self.eta(self.epoch + step / self.steps)
        self.write(f"epoch {self.epoch + 1}/{self.epochs}: {done}/{self.examples} examples, {rate:.0f} samples/s, "
                   f"{duration((self.examples - done) / rate)} left in the epoch"
                   + (f", ETA {duration(eta)}" if eta is not None else ""))

    def epoch_done(self, row: dict[str, Any], member: str | None = None) -> None:
        """The plain line of a finished epoch (printed whether or not a bar was shown),
        after the population member's name when there are several."""
        if self.bar is not None:
            self.bar.close()
        if self.enabled:
            self.write(("" if member is None else f"{member}: ") + epoch_line(row, self.epochs, self.eta(row["epoch"])))


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
