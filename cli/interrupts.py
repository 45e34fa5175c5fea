"""Ctrl-C and SIGTERM (what timeout, Slurm and docker send) end a command the same way: the
files being written are cleaned up as the exception unwinds, and one line says what was
left and how to go on."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator

import click

HINT_KEY = "tagtool.interrupt_hint"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""


def on_interrupt(hint: Callable[[], str]) -> None:
    """Tell the command group what an interrupt of the running command leaves behind."""
    click.get_current_context().meta[HINT_KEY] = hint


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report(ctx: click.Context, err: KeyboardInterrupt) -> None:
    """Print the interrupt line and exit as a shell reports a signal (128 + its number)."""
    signum = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
    hint = ctx.meta.get(HINT_KEY)
    click.echo(f"Interrupted by {signum.name}: {hint() if hint else 'the file being written, if any, was removed'}", err=True)
    ctx.exit(128 + signum)
