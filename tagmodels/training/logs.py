"""Per-epoch logs a researcher can open: metrics.jsonl, metrics.csv, TensorBoard events.

metrics.jsonl and metrics.csv are rewritten from the checkpointed history after every
epoch, so after a kill and a resume they hold each epoch exactly once (a kill between the
checkpoint and them is repaired on resume: tagmodels.training.resume). TensorBoard event
files (``RUN/tensorboard/``) are written only where the optional ``tensorboard`` package
imports (``pip install 'tagger-toolkit[tensorboard]'``); a resumed run purges the events
of epochs it trains again.
"""

from __future__ import annotations

import csv
import io
import math
from numbers import Real
from typing import Any

from tagdata.atomic import atomic_write
from tagmodels.training.runs import RunDir


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: a list value becomes numbered columns (``valid_ami_iterations_1``, ...)."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{key}_{i}": item for i, item in enumerate(value, start=1)})
        else:
            flat[key] = value
    return flat


def csv_text(history: list[dict[str, Any]]) -> str:
    """The history as CSV, one row per epoch, columns in order of first appearance."""
    rows = [flat_row(row) for row in history]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_metric_files(run: RunDir, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from ``history``."""
    run.write_metrics(history)
    text = csv_text(history)
    atomic_write(run.csv_path, lambda tmp: tmp.write_text(text))


def summary_writer_class() -> Any:
    """TensorBoard's SummaryWriter where the tensorboard package imports, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


class RunLogs:
    """Writes a run's per-epoch logs after each checkpoint."""

    def __init__(self, run: RunDir, first_epoch: int) -> None:
        self.run = run
        writer = summary_writer_class()
        # purge_step: events of epochs after the checkpoint (a kill between the events and
        # the next checkpoint) are dropped when those epochs are trained again.
        self.events = None if writer is None else writer(
            str(run.tensorboard_path), purge_step=first_epoch + 1 if first_epoch else None
        )

    def write(self, history: list[dict[str, Any]]) -> None:
        """Record the history, whose last row is the epoch just finished."""
        write_metric_files(self.run, history)
        if self.events is not None:
            row = flat_row(history[-1])
            for key, value in row.items():
                if key != "epoch" and isinstance(value, Real) and math.isfinite(value):
                    self.events.add_scalar(key, value, global_step=row["epoch"])
            self.events.flush()

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
