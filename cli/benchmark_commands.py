"""`tagtool benchmark`: the paper's Table 2 grid (classification on TextureMNIST1/2)."""

from __future__ import annotations

import time

import click
from tagtool_cli.interrupts import on_interrupt
from tagtool_cli.options import (
    DEVICE_HELP,
    PRECISION_CHOICE,
    PRECISION_HELP,
    positive,
    threads_option,
)

from tagmodels.benchmark.settings import BUDGETS, DATASETS, LADDER_WEIGHTS, METHODS, SCALES, TAGGER_SUPERVISED


def _expand(value: str, names: tuple[str, ...]) -> list[str]:
    return list(names) if value == "all" else [value]


@click.command()
@click.option("--method", type=click.Choice([*METHODS, "all"]), default="all", show_default=True)
@click.option("--dataset", type=click.Choice([*DATASETS, "all"]), default="all", show_default=True)
@click.option("--labels", type=click.Choice([*BUDGETS, "all"]), default="all", show_default=True,
              help="50000: every training label; 1000: 1,000 labelled + the rest unlabelled")
@click.option("--seeds", type=int, default=1, show_default=True, callback=positive, help="runs seeds 0..N-1")
@click.option("--scale", type=click.Choice(SCALES), default="quick", show_default=True,
              help="paper: the paper's epochs and widths (GPU); cpu: the full data, narrower and shorter "
                   "(about 2 h on 2 CPU cores); quick: a ~15 min CPU smoke check")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="benchmark directory")
@click.option("--mnist-dir", envvar="TAGDATA_MNIST_DIR", type=click.Path(file_okay=False),
              help="MNIST IDX files, to make the datasets [env: TAGDATA_MNIST_DIR]")
@click.option("--permute-pixels", is_flag=True, help="apply one fixed pixel permutation (per seed) to every image")
@click.option("--tagger-supervised", type=click.Choice(list(TAGGER_SUPERVISED)), default="runner", show_default=True,
              help="FC Tagger's supervised phase: the 2016 release's runner (class weight 0.1, noise 0.18, lr 0.0002) "
                   "or its pretrained model's (0.05, 0.15, 0.0005); the cpu scale keeps its lr 0.001")
@click.option("--ladder-weights", type=click.Choice(LADDER_WEIGHTS), default="few-labels", show_default=True,
              help="FC Ladder denoising weights: Rasmus et al.'s few-label ones (1000, 10, 0.1, ...) for both budgets, "
                   "or per budget (all labels: 1000, 1, 0.01, ...)")
@click.option("--ladder-normalise-reconstruction", is_flag=True,
              help="FC Ladder: normalise each reconstruction with the clean pass's batch mean and variance "
                   "before the cost (Rasmus et al., Algorithm 1)")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--compile/--no-compile", "compile_model", default=False, show_default=True,
              help="torch.compile the models (slow to start, faster per step)")
@threads_option
@click.option("--quiet", is_flag=True, help="no progress bars")
def benchmark(method, dataset, labels, seeds, scale, out_dir, mnist_dir, permute_pixels, tagger_supervised,
              ladder_weights, ladder_normalise_reconstruction, device, precision, compile_model, threads, quiet):
    """Run the grid of Table 2; skips finished cells, resumes half-finished ones, writes DIR/table.md."""
    from tagdata.atomic import new_directory
    from tagmodels.benchmark.grid import META, Benchmark, grid
    from tagmodels.benchmark.settings import Choices, get_scale
    from tagmodels.device import resolve_device
    from tagmodels.training.precision import configure, describe

    cells = grid(_expand(method, METHODS), _expand(dataset, DATASETS), _expand(labels, BUDGETS), seeds, permute_pixels)
    dev = resolve_device(device)
    precision = configure(dev, precision, threads)
    click.echo(describe(dev, precision, compile_model))
    choices = Choices(tagger_supervised, ladder_weights, ladder_normalise_reconstruction)
    bench = Benchmark(
        out_dir, get_scale(scale).with_choices(choices), dev, mnist_dir, progress=not quiet, log=click.echo,
        precision=precision, compile=compile_model, adapt_threads=threads == "auto",
    )
    on_interrupt(lambda: f"finished cells are kept in {out_dir}; run the same command again to do the rest")
    started = time.perf_counter()
    with new_directory(bench.out, ignore=(META,)):
        bench.run_grid(cells)
    click.echo(f"{len(cells)} cells in {time.perf_counter() - started:.0f} s -> {bench.out / 'table.md'}")


COMMANDS: list[click.Command] = [benchmark]
