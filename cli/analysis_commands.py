"""`tagtool` commands that analyse runs: plot, compare, table1, generalization, ablation."""

from __future__ import annotations

from pathlib import Path

import click
from tagtool_cli.options import (
    CHECKPOINT_HELP,
    DEVICE_HELP,
    PRECISION_CHOICE,
    PRECISION_HELP,
    existing_file,
    positive,
    seed_list,
    threads_option,
)
from tagtool_cli.outputs import output_file

from tagdata.errors import UserError
from tagdata.provenance import portable_path
from tagmodels.experiments.ablation_studies import STUDIES
from tagmodels.tagger.presets import PRESETS


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "png_out", required=True, type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="PNG file to write")
def plot(run_dir, png_out):
    """Draw a run's cost and validation figures per epoch (and AMI per iteration)."""
    from tagdata.render import save_png
    from tagmodels.training.plot import training_figure
    from tagmodels.training.runs import RunDir

    run = RunDir(run_dir)
    run.config()  # a missing run directory is named as such
    history = run.history()
    save_png(training_figure(history), png_out)
    click.echo(f"wrote {png_out}: {len(history)} epochs of {run_dir}")


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "png_out", required=True, type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="PNG file to write")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="also write each run's settings and per-epoch figures here")
@click.option("--epochs", type=int, callback=positive,
              help="only the first N epochs of each run (a short run beside a long one)")
def compare(run_dirs, png_out, json_out, epochs):
    """Draw several runs' learning curves on shared axes (e.g. fp32 against bf16, or ablations)."""
    from tagdata.render import save_png
    from tagmodels.training.plot import comparison_figure
    from tagmodels.training.runs import RunDir, provenance, write_json

    runs = {Path(d).name: RunDir(d) for d in run_dirs}
    if len(runs) != len(run_dirs):
        raise UserError("the runs to compare need distinct directory names (they label the curves)")
    histories = {name: run.history()[:epochs] for name, run in runs.items()}
    configs = {name: run.config() for name, run in runs.items()}
    save_png(comparison_figure(histories), png_out)
    click.echo(f"wrote {png_out}: {', '.join(f'{n} ({len(h)} epochs)' for n, h in histories.items())}")
    if json_out:
        write_json(Path(json_out), {
            "runs": {name: {"training": configs[name].get("training"), "tagger": configs[name].get("tagger"),
                            "provenance": configs[name].get("provenance"), "history": histories[name]}
                     for name in runs},
            **provenance("cpu"),
        })


@click.command("ablation")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="a dataset file (tagtool make-dataset)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="directory of the runs")
@click.option("--study", type=click.Choice(sorted(STUDIES)), default="learning-check", show_default=True,
              help="the variants: learning-check (delta z and L(m) zeroed); shapes-gap, texture-grouping and "
                   "demo-budget (one setting changed each); texture-split (z read-out rank, m^0 smoothing); "
                   "norm-split (LayerNorm or BatchNorm in the Ladder "
                   "and in the TAG part); docs/ablations.md")
@click.option("--only", "only", help="a comma-separated subset of the study's variants, in the study's order")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="write the AMI curves here (rewritten after every variant)")
@click.option("--table", "md_out", type=click.Path(dir_okay=False), callback=output_file(".md"),
              help="write the study as a markdown table here")
@click.option("--png", "png_out", type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="draw the variants' median AMI per iteration here")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="shapes-small", show_default=True)
@click.option("--epochs", type=int, callback=positive, help="default: the preset's")
@click.option("--norm", type=click.Choice(["batch", "layer"]), help="default: the preset's")
@click.option("--groups", type=int, callback=positive, help="K groups during training; default: the preset's")
@click.option("--split", type=click.Choice(["valid", "test"]), default="test", show_default=True,
              help="the split every run is scored on")
@click.option("--iterations", type=int, default=5, show_default=True, callback=positive, help="evaluation iterations")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seeds", callback=seed_list, help="several seeds, e.g. 0-4: each variant trains them as one "
              "population; the report gives the median and range (overrides --seed)")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True, help=PRECISION_HELP)
@threads_option
def ablation(data_path, out_dir, study, only, json_out, md_out, png_out, preset, epochs, norm, groups, split, iterations,
             seed, seeds, device, precision, threads):
    """Variants of one run, each with its seeds as a population: AMI per iteration, median and range."""
    from tagdata.atomic import atomic_write, new_directory
    from tagdata.render import save_png
    from tagmodels.device import resolve_device
    from tagmodels.experiments.ablation import ablation_figure, render, run_ablation
    from tagmodels.tagger.presets import get_preset
    from tagmodels.training.precision import configure, describe
    from tagmodels.training.runs import write_json

    overrides = {k: v for k, v in {"epochs": epochs, "norm": norm, "groups": groups}.items() if v is not None}
    variants = STUDIES[study](get_preset(preset).with_overrides(**overrides))
    if only:
        chosen = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in variants]
        if unknown or not chosen:
            raise UserError(f"--only: {', '.join(unknown) or 'nothing given'} not in the {study} study "
                            f"({', '.join(variants)})")
        variants = {name: changes for name, changes in variants.items() if name in chosen}
    dev = resolve_device(device)
    precision = configure(dev, precision, threads)
    click.echo(describe(dev, precision, False))
    with new_directory(out_dir):
        result = run_ablation(
            existing_file(data_path), Path(out_dir), preset, seeds or [seed], dev, iterations, variants, precision,
            split, log=click.echo, adapt_threads=threads == "auto",
            report=(lambda partial: write_json(Path(json_out), partial)) if json_out else None, **overrides,
        )
    if md_out:
        text = render(result, f"Ablation: the {study} study on {Path(data_path).name}")
        atomic_write(Path(md_out), lambda tmp: tmp.write_text(text))
    if png_out:
        save_png(ablation_figure(result), png_out)


@click.command("generalization")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="a dataset to score on (repeat: e.g. shapes-2obj, shapes, shapes-4obj)")
@click.option("--groups", "group_counts", multiple=True, type=int, callback=positive,
              help="numbers of groups K to evaluate with (repeat; default 2 3 4 5)")
@click.option("--iterations", type=int, callback=positive, help="default: the preset's evaluation iterations (5)")
@click.option("--limit", type=int, callback=positive, help="score only the first N test examples of each dataset")
@click.option("--checkpoint", type=click.Choice(["last", "best"]), default="last", show_default=True, help=CHECKPOINT_HELP)
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), callback=output_file(), help="write the table as JSON here")
@click.option("--out", "md_out", type=click.Path(dir_okay=False), callback=output_file(".md"), help="write it as markdown here")
def generalization(run_dir, data_paths, group_counts, iterations, limit, checkpoint, device, json_out, md_out):
    """AMI of a trained Tagger on other datasets and with other K (the paper's Section 3.2, Fig. 4)."""
    from tagdata.atomic import atomic_write
    from tagmodels.device import resolve_device
    from tagmodels.experiments.generalization import generalization_table, render
    from tagmodels.training.data import load_split
    from tagmodels.training.grouping import load_tagger
    from tagmodels.training.runs import RunDir, provenance, write_json

    dev = resolve_device(device)
    run = RunDir(run_dir)
    loaded = load_tagger(run, dev, checkpoint)
    model, config = loaded.model, loaded.config
    datasets = {}
    for path in data_paths:
        data = load_split(existing_file(path), "test", dev, limit)
        data.check_inputs(model.config.n_inputs, path)
        datasets[Path(path).stem] = data
    iterations = iterations or config["training"]["eval_iterations"]
    table = generalization_table(model, datasets, list(group_counts) or [2, 3, 4, 5], iterations,
                                 config["training"]["batch_size"])
    text = render(table, f"Generalisation of {Path(run_dir).name} ({len(run.history())} epochs, {checkpoint} checkpoint)")
    click.echo(text, nl=False)
    table.update({"run": portable_path(run_dir), "checkpoint": checkpoint, "trained_epochs": len(run.history()),
                  "training_preset": config.get("preset"), "norm": model.config.norm, **provenance(dev, 0)})
    if json_out:
        write_json(Path(json_out), table)
    if md_out:
        atomic_write(Path(md_out), lambda tmp: tmp.write_text(text))


@click.command("table1")
@click.argument("evaluations", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "md_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="write the tables as markdown here")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="write the tables as JSON here")
def table1(evaluations, md_out, json_out):
    """Tables 1a and 1b from `evaluate --json` files of several runs (seeds): median, std, n."""
    from tagmodels.experiments.table1 import aggregate, render
    from tagmodels.training.runs import write_json

    table = aggregate([Path(p) for p in evaluations])
    text = render(table)
    click.echo(text, nl=False)
    if md_out:
        from tagdata.atomic import atomic_write

        atomic_write(Path(md_out), lambda tmp: tmp.write_text(text))
    if json_out:
        write_json(Path(json_out), table)


COMMANDS: list[click.Command] = [plot, compare, table1, generalization, ablation]
