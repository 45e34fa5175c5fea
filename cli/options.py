"""Options several `tagtool` commands share: one definition each, so that their checks and
help texts cannot drift apart between commands."""

from __future__ import annotations

import math
from pathlib import Path

import click

from tagdata.errors import UserError
from tagmodels.training.precision_names import PRECISIONS

DEVICE_HELP = "cpu, cuda or cuda:N (default: cuda when present, else cpu)"
CHECKPOINT_HELP = "last: the final epoch's parameters; best: the epoch with the best validation AMI"
PRECISION_CHOICE = click.Choice(["auto", *PRECISIONS])
PRECISION_HELP = "auto: bf16 on CUDA and on CPUs with AMX, else fp32"

# CPU threads of a command that trains; "auto" follows the cores other processes leave free.
threads_option = click.option(
    "--threads", default="auto", show_default=True,
    help="CPU threads: a number, or auto (the cores other processes leave free, followed as they change)",
)


def positive(ctx: click.Context, param: click.Parameter, value):
    """A click callback: an unset value passes; a number (or each of a repeated option's) is at least 1."""
    if isinstance(value, tuple):
        if any(item < 1 for item in value):
            raise click.BadParameter(f"must each be at least 1, got {list(value)}")
    elif value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}")
    return value


def positive_number(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback: an unset value passes; a number must be finite and above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}")
    return value


def seed_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """A click callback: "0-4" or "0,3,7" as a list of distinct seeds."""
    if value is None:
        return None
    seeds: list[int] = []
    try:
        for part in value.split(","):
            first, _, last = part.strip().partition("-")
            seeds += range(int(first), int(last or first) + 1)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give seeds as 0-4 or 0,3,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{value!r}: give each seed once, at least one")
    return seeds


def number_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    """A click callback: "0.001,0.002" as a list of distinct positive numbers."""
    if value is None:
        return None
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give numbers separated by commas, e.g. 0.001,0.002") from None
    if not all(number > 0 and number != float("inf") for number in numbers) or len(set(numbers)) != len(numbers):
        raise click.BadParameter(f"{value!r}: give distinct positive numbers")
    return numbers


def width_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """A click callback: "200,100" as layer widths, each at least 1 (None when not given)."""
    if value is None:
        return None
    try:
        widths = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give whole numbers separated by commas, e.g. 200,100") from None
    if not widths or min(widths) < 1:
        raise click.BadParameter(f"{value!r}: every width must be at least 1")
    return widths


def existing_file(path: str) -> str:
    """``path`` when it names a file; a one-line error otherwise."""
    if not Path(path).is_file():
        raise UserError(f"data file {path} does not exist")
    return path
