"""`tagtool list`: the built-in datasets and presets with their values, without reading code."""

from __future__ import annotations

from dataclasses import asdict

import click

from tagdata.specs import ShapesSpec, builtin_names, resolve_spec
from tagmodels.tagger.presets import PRESETS


def dataset_lines() -> list[str]:
    """One line per built-in spec: kind, image size, content, split sizes, seed, in columns."""
    rows = []
    for name in builtin_names():
        spec = resolve_spec(name)
        if isinstance(spec, ShapesSpec):
            content = f"{spec.objects} shapes"
        else:
            content = f"{spec.digits} digit{'s' if spec.digits > 1 else ''}"
            content += ", hard edges" if spec.alpha == "binary" else ""
        splits = " / ".join(f"{split} {size}" for split, size in spec.splits.items())
        rows.append((name, spec.kind, "x".join(map(str, spec.image_size)), content, f"{splits}; seed {spec.seed}"))
    name_width, content_width = (max(len(row[i]) for row in rows) for i in (0, 3))
    return [f"{name:<{name_width + 2}}{kind:<15}{size:>6}  {content:<{content_width}} {rest}"
            for name, kind, size, content, rest in rows]


def preset_lines() -> list[str]:
    """One block per preset: every hyper-parameter and its value."""
    lines = []
    for name, preset in sorted(PRESETS.items()):
        values = asdict(preset)
        lines.append(f"{name}:")
        width = max(map(len, values)) + 1  # one space at least after the longest name
        lines += [f"  {key:<{width}}{value}" for key, value in values.items()]
    return lines


@click.command("list")
@click.argument("what", type=click.Choice(["all", "datasets", "presets"]), default="all")
def list_command(what: str) -> None:
    """Show the built-in datasets and presets with their values."""
    if what in ("all", "datasets"):
        click.echo("datasets (tagtool make-dataset NAME; data_specs/NAME.toml):")
        for line in dataset_lines():
            click.echo(f"  {line}")
    if what in ("all", "presets"):
        click.echo("presets (tagtool train --preset NAME; any value can be overridden):")
        for line in preset_lines():
            click.echo(f"  {line}")


COMMANDS: list[click.Command] = [list_command]
