"""Output options checked when the command line is read, before any work is done: a
mistyped output path should not cost a whole evaluation (or dataset) first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import click

from tagdata.atomic import check_writable
from tagdata.errors import UserError


def output_file(suffix: str | None = None) -> Callable[[click.Context, click.Parameter, str | None], Path | None]:
    """A click callback for an output file option; ``suffix`` (".png") is the one format
    the command writes, so another name (x.jpg) is refused rather than filled with PNG bytes."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        option = param.opts[0]
        if value.endswith((os.sep, "/")):
            raise UserError(f"{option} {value} names a directory; give a file name inside it")
        path = check_writable(value)
        if suffix is not None and path.suffix.lower() != suffix:
            raise UserError(
                f"{option} {value}: this command writes {suffix[1:].upper()}; "
                f"name the file {path.with_suffix(suffix).name}"
            )
        return path

    return check
