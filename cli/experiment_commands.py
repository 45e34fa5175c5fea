"""`tagtool reproduce`: the paper's Tables 1 and 2 in one prepared, budgeted, resumable run
(tagmodels.experiments.reproduce); `tagtool supervised-grouping`: what the supervised phase
does to a trained Tagger's grouping (tagmodels.experiments.supervised_grouping)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from tagtool_cli.interrupts import on_interrupt
from tagtool_cli.options import (
    DEVICE_HELP, PRECISION_CHOICE, PRECISION_HELP, positive, positive_number, threads_option, width_list,
)
from tagtool_cli.outputs import output_file

from tagdata.errors import UserError


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="output folder: plan, runs, results, table1.md, table2.md, report.md")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--budget", default="10m", show_default=True,
              help="device time to spend, as 90s, 10m or 2h: runs whose estimates do not fit are skipped")
@click.option("--scale", default="paper", show_default=True,
              help="paper: the paper's runs (a GPU); cpu: shorter and narrower; tiny: seconds (CI)")
@click.option("--seeds-table1", type=int, default=20, show_default=True, callback=positive,
              help="seeds of Tagger and Tagger* (the paper: medians over 20)")
@click.option("--seeds-table2", type=int, default=5, show_default=True, callback=positive,
              help="seeds of every Table 2 cell (the paper: 5)")
@click.option("--mnist-dir", envvar="TAGDATA_MNIST_DIR", type=click.Path(file_okay=False),
              help="MNIST IDX files, to make the TextureMNIST sets [env: TAGDATA_MNIST_DIR]")
@click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True, help=PRECISION_HELP)
@threads_option
@click.option("--probe-seconds", type=float, default=None,
              help="seconds of training steps per model kind in the speed probe [default: 2; tiny: 0.05]")
@click.option("--plan-only", is_flag=True, help="probe the speed, write plan.json and the report; train nothing")
@click.option("--quiet", is_flag=True, help="no progress bars")
def reproduce(out_dir, device, budget, scale, seeds_table1, seeds_table2, mnist_dir, precision, threads,
              probe_seconds, plan_only, quiet):
    """Plan, time and run every run of Tables 1 and 2 within a budget; run it again to go on."""
    from tagdata.atomic import new_directory
    from tagmodels.device import resolve_device
    from tagmodels.experiments.reproduce import reproduce as run_reproduction
    from tagmodels.experiments.reproduce_plan import get_reproduce_scale, parse_budget
    from tagmodels.training.precision import configure, describe

    seconds = parse_budget(budget)
    chosen = get_reproduce_scale(scale)
    probe = chosen.probe_seconds if probe_seconds is None else probe_seconds
    if probe <= 0:
        raise UserError(f"--probe-seconds must be positive, got {probe_seconds}")
    out = Path(out_dir)
    if not out.parent.is_dir():
        raise UserError(f"directory {out.parent} does not exist")
    dev = resolve_device(device)
    resolved = configure(dev, precision, threads)
    click.echo(describe(dev, resolved, False))
    on_interrupt(lambda: f"finished runs are kept in {out_dir}; run the same command again to go on")
    started = time.perf_counter()
    with new_directory(out):
        report = run_reproduction(out, chosen, dev, resolved, threads, seconds, seeds_table1, seeds_table2,
                                  str(Path(mnist_dir).resolve()) if mnist_dir else None, probe, plan_only,
                                  progress=not quiet, log=click.echo)
    counts = ", ".join(f"{n} {state}" for state, n in report["counts"].items())
    click.echo(f"{counts} in {time.perf_counter() - started:.0f} s -> {out / 'report.md'}")


@click.command("supervised-grouping")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="run directory of the supervised phase (run the same command again to resume it)")
@click.option("--epochs", type=int, default=4, show_default=True, callback=positive,
              help="epochs of the supervised phase (again with more: it goes on from its last epoch)")
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=positive_number,
              help="Adam's learning rate (the cpu scale of Table 2: 0.001; the 2016 release's runner: 0.0002)")
@click.option("--fresh-widths", default="200,100", show_default=True, callback=width_list,
              help="the two fresh hidden layers grown on top (Section 3.3: 500,250 at the paper's widths)")
@click.option("--classification-weight", type=float, default=0.1, show_default=True, callback=positive_number)
@click.option("--noise", type=float, default=0.18, show_default=True, callback=positive_number,
              help="corruption sigma of the supervised phase")
@click.option("--iterations", type=int, default=4, show_default=True, callback=positive,
              help="iterations of the supervised phase")
@click.option("--eval-iterations", type=int, default=5, show_default=True, callback=positive)
@click.option("--valid-examples", type=int, default=1000, show_default=True, callback=positive)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the fresh layers and the data order")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True, help=PRECISION_HELP)
@threads_option
@click.option("--json", "json_out", required=True, callback=output_file(".json"),
              help="write the grouping before and after, per iteration and per epoch")
@click.option("--quiet", is_flag=True, help="no progress bar")
def supervised_grouping(run_dir, out_dir, epochs, lr, fresh_widths, classification_weight, noise, iterations,
                        eval_iterations, valid_examples, seed, device, precision, threads, json_out, quiet):
    """Train the supervised phase (Section 3.3, every label) on a Tagger run; AMI before and after."""
    from tagmodels.device import resolve_device
    from tagmodels.experiments.supervised_grouping import supervised_grouping as run_phase
    from tagmodels.training.precision import configure
    from tagmodels.training.runs import write_json

    dev = resolve_device(device)
    resolved = configure(dev, precision, threads)
    on_interrupt(lambda: f"the phase resumes from its last epoch: run the same command again ({out_dir})")
    record = run_phase(run_dir, out_dir, dev, epochs, lr, fresh_widths, classification_weight, noise, iterations,
                       eval_iterations, valid_examples, seed, resolved, progress=not quiet)
    write_json(json_out, record)
    before, after = record["before"]["iterations"][-1]["ami"], record["after"]["iterations"][-1]["ami"]
    click.echo(f"AMI after {eval_iterations} iterations: {before:.3f} before, {after:.3f} after the supervised phase; "
               f"validation error {record['after']['classification_error']:.1f} % -> {json_out}")


COMMANDS: list[click.Command] = [reproduce, supervised_grouping]
