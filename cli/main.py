"""The ``tagtool`` entry point: one click group; each command family lives in its own module.

Every command runs inside :class:`ToolGroup`, which turns a :class:`tagdata.UserError`, and a
failure of the machine rather than of the code (a file that cannot be read or written, memory
that cannot be had), into one ``Error: ...`` line and exit status 1 instead of a traceback;
Ctrl-C and SIGTERM end with one line saying what was left (:mod:`tagtool_cli.interrupts`).
"""

from __future__ import annotations

import errno
import re

import click
from tagtool_cli.interrupts import report, sigterm_as_interrupt

from tagdata.atomic import storage_failure
from tagdata.errors import UserError
from tagdata.locking import release_all
from tagdata.version import __version__


class ToolGroup(click.Group):
    """A click group that reports user mistakes and machine failures as a single line."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but each summary is wrapped, never cut off at the terminal's width."""
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, command.get_short_help_str(limit=1000)) for name, command in commands
                if command is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            if err.errno == errno.EPIPE:  # output piped into `head`: click's main handles it
                raise
            where = f"{err.filename}: " if err.filename else ""
            raise click.ClickException(f"{where}{storage_failure(err)}") from None
        except MemoryError as err:
            raise click.ClickException(f"out of memory: {err or 'an allocation failed'}") from None
        except RuntimeError as err:
            shortage = memory_shortage(err)
            if shortage is None:
                raise
            raise click.ClickException(shortage) from None
        except KeyboardInterrupt as err:
            report(ctx, err)
        finally:
            release_all()  # the run directories the command wrote (tagdata.locking)


_ALLOCATION = re.compile(r"(?i)tried to allocate (\d+ bytes|[\d.]+ ?[KMGT]i?B)")


def memory_shortage(err: RuntimeError) -> str | None:
    """The one line for torch's failed allocation (CPU: "DefaultCPUAllocator: can't allocate
    memory", CUDA: torch.OutOfMemoryError), or None for any other RuntimeError."""
    text = str(err)
    if type(err).__name__ != "OutOfMemoryError" and "can't allocate memory" not in text:
        return None
    size = _ALLOCATION.search(text)
    if size and size.group(1).endswith(" bytes"):
        asked = f"{int(size.group(1).split()[0]) / 2**30:.1f} GiB"
    else:
        asked = size.group(1) if size else "more than is free"
    device = "the GPU" if type(err).__name__ == "OutOfMemoryError" else "this machine"
    return (f"out of memory: an allocation of {asked} failed on {device}; "
            "use a smaller --batch-size, --groups or model")


@click.group(cls=ToolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagtool")
def tagtool() -> None:
    """Datasets, models and metrics for the TAG framework (Tagger, NeurIPS 2016)."""


def _register() -> None:
    """Attach the command families; each module owns its commands."""
    from tagtool_cli import (
        analysis_commands,
        benchmark_commands,
        data_commands,
        experiment_commands,
        gpu_commands,
        list_commands,
        model_commands,
        speed_commands,
    )

    for module in (data_commands, model_commands, analysis_commands, experiment_commands, speed_commands, gpu_commands,
                   benchmark_commands, list_commands):
        for command in module.COMMANDS:
            tagtool.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    tagtool(prog_name="tagtool")


if __name__ == "__main__":
    main()
