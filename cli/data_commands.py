"""`tagtool` commands for datasets: make-dataset, show-dataset, speed-data."""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path

import click
import numpy as np
from tagtool_cli.interrupts import on_interrupt
from tagtool_cli.outputs import output_file
from tqdm import tqdm

from tagdata import render
from tagdata.atomic import atomic_write
from tagdata.build import make_dataset
from tagdata.errors import UserError
from tagdata.idx import download_mnist
from tagdata.reader import TagFile, open_dataset
from tagdata.specs import builtin_names, resolve_spec, with_overrides
from tagdata.speed import DEFAULT_DATASETS, measure_generation_speed
from tagdata.terminal import bar_size


def note(message: str) -> None:
    """A line for the user beside the command's output (on stderr)."""
    click.echo(f"Note: {message}", err=True)


@click.command("make-dataset", epilog=f"\b\nBuilt-in specs (tagtool list datasets):\n  {', '.join(builtin_names())}")
@click.argument("dataset", metavar="NAME|SPEC.toml")
@click.option("--out", required=True, type=click.Path(dir_okay=False), callback=output_file(),
              help="HDF5 file to write.")
@click.option("--seed", type=int, help="Override the spec's seed.")
@click.option("--train", type=int, help="Override the number of training examples.")
@click.option("--valid", type=int, help="Override the number of validation examples.")
@click.option("--test", type=int, help="Override the number of test examples.")
@click.option("--single", type=int, help="Override the number of one-shape examples (Shapes only).")
@click.option("--mnist-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory with the four MNIST IDX files, gzipped or not "
                   "(default: $TAGDATA_MNIST_DIR). TextureMNIST only.")
@click.option("--download", is_flag=True,
              help="Fetch MNIST with torchvision (into --mnist-dir, else ~/.cache/tagdata).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def make_dataset_command(dataset: str, out: Path, seed: int | None, train: int | None,
                         valid: int | None, test: int | None, single: int | None,
                         mnist_dir: Path | None, download: bool, overwrite: bool) -> None:
    """Generate a dataset (a built-in NAME or a spec file) into an HDF5 file.

    Temporaries left by a killed earlier run to the same --out are removed first.
    """
    spec = with_overrides(resolve_spec(dataset), seed=seed, train=train, valid=valid,
                          test=test, single=single)
    if spec.kind != "texture-mnist" and (mnist_dir is not None or download):
        raise UserError(f"--mnist-dir/--download apply to TextureMNIST only, not {spec.name}")
    if download:
        root = mnist_dir or Path.home() / ".cache" / "tagdata"
        mnist_dir = download_mnist(root)
    on_interrupt(lambda: f"nothing was written to {out} (its temporary was removed); run the same command again")
    start = time.perf_counter()
    total = sum(spec.splits.values())
    with tqdm(total=total, unit="ex", disable=None, leave=False, desc=spec.name, **bar_size()) as bar:
        hashes = make_dataset(spec, out, mnist_dir=mnist_dir, overwrite=overwrite, progress=bar.update, log=note)
    sizes = ", ".join(f"{split} {spec.splits[split]}" for split in hashes)
    click.echo(f"wrote {out}: {spec.name} ({sizes}; seed {spec.seed}) "
               f"in {time.perf_counter() - start:.1f} s")
    for split, digest in hashes.items():
        click.echo(f"  sha256 {split:<6} {digest}")


def _describe(file: TagFile, split_name: str) -> list[str]:
    """Summary lines: file, splits with array shapes and hashes, label histogram, spec."""
    attrs = file.attrs
    lines = [f"{file.path}: {file.name} ({file.kind}, {file.layout} layout"
             + (f", format {attrs.get('format_version')}, tagdata {attrs.get('tagdata_version')}, "
                f"seed {attrs.get('seed')})" if file.layout == "tagdata" else ")")]
    for name in file.splits:
        split = file[name]
        digest = file.hashes.get(name)
        lines.append(f"  {name}: {len(split)} examples" + (f", sha256 {digest}" if digest else ""))
        for array_name, view in split.arrays.items():
            lines.append(f"    {array_name:<13}{str(view.dtype):<9}{view.shape}")
    split = file[split_name]
    labels = np.asarray(split.labels).reshape(-1)
    counts = np.bincount(labels) if labels.size else np.zeros(0, int)
    shape_names = [s.get("name") for s in file.spec.get("shapes", [])]
    named = [f"{i}{f' {shape_names[i]}' if i < len(shape_names) else ''}: {c}" for i, c in enumerate(counts)]
    lines.append(f"label histogram ({split_name}, all objects): " + ", ".join(named))
    lines.append("spec:")
    if "spec" in attrs:  # tagdata files: the stored TOML text
        lines += [f"  {line}".rstrip() for line in str(attrs["spec"]).rstrip().splitlines()]
    else:  # Fuel files: the summary the reader derives
        lines += [f"  {key} = {value}" for key, value in file.spec.items()]
    return lines


@click.command("show-dataset")
@click.argument("file", metavar="FILE.h5", type=click.Path(path_type=Path))
@click.option("--split", default="test", show_default=True, help="Split to draw.")
@click.option("--n", "count", default=16, show_default=True, type=int, help="Examples to draw.")
@click.option("--columns", default=4, show_default=True, type=int, help="Examples per grid row.")
@click.option("--out", type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="PNG to write: image | segmentation (unscored grey) | soft masks, per example.")
@click.option("--verify", is_flag=True, help="Recompute every split's hash and compare.")
def show_dataset_command(file: Path, split: str, count: int, columns: int, out: Path | None,
                         verify: bool) -> None:
    """Summarise a dataset file and draw examples with their ground truth."""
    if count < 1 or columns < 1:
        raise UserError("--n and --columns must be at least 1")
    with open_dataset(file) as data:
        chosen = data[split]
        for line in _describe(data, split):
            click.echo(line)
        if verify:
            for name in data.splits:
                stored, actual = data.hashes.get(name), data[name].compute_hash()
                verdict = "ok" if stored == actual else ("no stored hash" if stored is None else "MISMATCH")
                click.echo(f"verify {name}: {verdict} ({actual})")
                if stored is not None and stored != actual:
                    raise UserError(f"split '{name}' does not match its stored hash")
        if out is None:
            return
        examples = chosen.read(0, min(count, len(chosen)))
        height = examples["images"].shape[-2]
        factor = max(1, math.ceil(96 / height))  # about 100 pixels per panel
        cells = [
            render.upscale(render.side_by_side(
                render.grey_to_rgb(examples["images"][i]),
                render.colour_labels(examples["segmentation"][i]),
                render.colour_soft(examples["masks"][i]),
            ), factor)
            for i in range(len(examples["images"]))
        ]
        render.save_png(render.tile(cells, columns, pad=3 * factor), out)
    click.echo(f"drew {len(cells)} {split} examples to {out}")


@click.command("speed-data")
@click.option("--out", type=click.Path(dir_okay=False), callback=output_file(), help="JSON file to write.")
@click.option("--mnist-dir", type=click.Path(file_okay=False, path_type=Path),
              help="MNIST IDX directory (default: $TAGDATA_MNIST_DIR).")
@click.option("--dataset", "datasets", multiple=True, metavar="NAME",
              help="Dataset to measure (repeatable; default: all built-in ones).")
def speed_data_command(out: Path | None, mnist_dir: Path | None, datasets: tuple[str, ...]) -> None:
    """Time full-size generation (file writing included) and peak memory per dataset."""
    command = ["tagtool", "speed-data"] + [f"--dataset={d}" for d in datasets]
    command += [f"--mnist-dir={mnist_dir}"] if mnist_dir else []
    command += [f"--out={out}"] if out else []
    report = measure_generation_speed(datasets or DEFAULT_DATASETS, str(mnist_dir) if mnist_dir else None,
                       shlex.join(command))
    for name, result in report["datasets"].items():
        met = "all targets met" if all(result["targets_met"].values()) else "TARGET MISSED"
        click.echo(f"{name:<16}{result['examples']:>7} examples {result['seconds']:>7.2f} s "
                   f"peak {result['peak_rss_bytes'] / 2**20:>6.0f} MiB  {met}")
    text = json.dumps(report, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out, lambda tmp: tmp.write_text(text))
        click.echo(f"wrote {out}")


COMMANDS: list[click.Command] = [make_dataset_command, show_dataset_command, speed_data_command]
