"""The ``tagtool`` entry point: one click group; each command family lives in its own module.

Every command runs inside :class:`ToolGroup`, which turns a :class:`tagdata.UserError` into
one ``Error: ...`` line and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import os

import click

from tagdata.errors import UserError
from tagdata.version import __version__


class ToolGroup(click.Group):
    """A click group that reports user mistakes as a single line."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=ToolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagtool")
def tagtool() -> None:
    """Datasets, models and metrics for the TAG framework (Tagger, NeurIPS 2016)."""


def _register() -> None:
    """Attach the command families; each module owns its commands."""
    from tagtool_cli import benchmark_commands, data_commands, model_commands

    for module in (data_commands, model_commands, benchmark_commands):
        for command in module.COMMANDS:
            tagtool.add_command(command)


_register()


def main() -> None:
    """Console-script entry point.

    torch's OpenMP workers spin while they wait by default, which makes a 2-core machine
    with one other busy process many times slower; the passive wait policy must be set
    before torch loads, so it is set here (an explicit OMP_WAIT_POLICY wins).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tagtool(prog_name="tagtool")


if __name__ == "__main__":
    main()
