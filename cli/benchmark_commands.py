"""`tagtool` commands for benchmarks (filled in by its issue)."""

import click

COMMANDS: list[click.Command] = []
