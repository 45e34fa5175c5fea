"""`tagtool benchmark`: the paper's Table 2 grid (classification on TextureMNIST1/2)."""

from __future__ import annotations

import time

import click

from tagmodels.benchmark.settings import BUDGETS, DATASETS, METHODS, SCALES
from tagtool_cli.interrupts import on_interrupt


def _expand(value: str, names: tuple[str, ...]) -> list[str]:
    return list(names) if value == "all" else [value]


def _positive(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}")
    return value


@click.command()
@click.option("--method", type=click.Choice([*METHODS, "all"]), default="all", show_default=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "all"]), default="all", show_default=True)
@click.option("--labels", type=click.Choice([*BUDGETS, "all"]), default="all", show_default=True,
              help="50000: every training label; 1000: 1,000 labelled + the rest unlabelled")
@click.option("--seeds", type=int, default=1, show_default=True, callback=_positive, help="runs seeds 0..N-1")
@click.option("--scale", type=click.Choice(SCALES), default="quick", show_default=True,
              help="paper: the paper's epochs and widths (GPU); quick: a ~15 min CPU smoke check")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="benchmark directory")
@click.option("--mnist-dir", envvar="TAGDATA_MNIST_DIR", type=click.Path(file_okay=False),
              help="MNIST IDX files, to make the datasets [env: TAGDATA_MNIST_DIR]")
@click.option("--permute-pixels", is_flag=True, help="apply one fixed pixel permutation (per seed) to every image")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def benchmark(method, dataset, labels, seeds, scale, out_dir, mnist_dir, permute_pixels, device, quiet):
    """Run the grid of Table 2; skips finished cells, resumes half-finished ones, writes DIR/table.md."""
    from tagmodels.benchmark.grid import Benchmark, grid
    from tagmodels.benchmark.settings import get_scale
    from tagmodels.device import resolve_device

    cells = grid(_expand(method, METHODS), _expand(dataset, DATASETS), _expand(labels, BUDGETS), seeds, permute_pixels)
    bench = Benchmark(out_dir, get_scale(scale), resolve_device(device), mnist_dir, progress=not quiet, log=click.echo)
    on_interrupt(lambda: f"finished cells are kept in {out_dir}; run the same command again to do the rest")
    started = time.perf_counter()
    bench.run_grid(cells)
    click.echo(f"{len(cells)} cells in {time.perf_counter() - started:.0f} s -> {bench.out / 'table.md'}")


COMMANDS: list[click.Command] = [benchmark]
