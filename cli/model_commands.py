"""`tagtool` commands for Tagger runs: train, evaluate, visualize."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource
from tagtool_cli.interrupts import on_interrupt
from tagtool_cli.options import (
    CHECKPOINT_HELP,
    DEVICE_HELP,
    PRECISION_CHOICE,
    PRECISION_HELP,
    existing_file,
    number_list,
    positive,
    positive_number,
    seed_list,
    threads_option,
    width_list,
)
from tagtool_cli.outputs import output_file

from tagdata.errors import UserError
from tagmodels.tagger.presets import PRESETS
from tagmodels.tagger.tag_names import DELTA_Z_FORMS, INITIAL_M, LIKELIHOOD_VARIANCES, VARIANCE_MAPS, Z_INPUTS
from tagmodels.training.resume_names import HELD_TRAINING_SETTINGS

# torch-importing modules are imported inside the commands, so that `tagtool --help` and
# the dataset commands start quickly.

def _preset_help(text: str, field: str) -> str:
    """Help text ending in every preset's value of ``field``."""
    values = {name: getattr(preset, field) for name, preset in sorted(PRESETS.items())}
    if len(set(values.values())) == 1:
        return f"{text} [every preset: {next(iter(values.values()))}]"
    return f"{text} [preset: {', '.join(f'{name} {value}' for name, value in values.items())}]"


def _iterations(count: int) -> str:
    return f"{count} iteration{'s' if count != 1 else ''}"


# train options that --resume compares with the run (name in config.json -> parameter): the
# held settings and --epochs, which may grow; parameters are named as the settings but these.
_PARAMETERS = {"data": "data_path", "compile": "compile_model"}
RESUME_OPTIONS = {
    name: _PARAMETERS.get(name, name) for name in ("data", "preset", *HELD_TRAINING_SETTINGS, "epochs")
}


def _left_behind(out_dir: str) -> str:
    """What an interrupted `train` leaves, and how to go on."""
    from tagmodels.training.runs import RunDir

    run = RunDir(out_dir)
    done = len(run.history())
    resume = f"continue with: tagtool train --out {out_dir} --resume"
    if done:
        return f"{out_dir} keeps the checkpoint of epoch {done}; {resume}"
    if run.config_path.exists():
        return f"no epoch had finished; {resume}"
    return "no epoch had finished, so the new run was removed; run the same command again"


@click.command()
@click.option(
    "--model", type=click.Choice(["tagger"]), default="tagger", show_default=True,
    help="the unsupervised Tagger; the baselines train through `tagtool benchmark`",
)
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="dataset HDF5 file (tagtool make-dataset); needed for a new run")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="run directory: config.json, metrics.jsonl, metrics.csv, checkpoint.pt, best.pt")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="shapes-small", show_default=True,
              help="hyper-parameter set; `tagtool list presets` shows every value")
@click.option("--epochs", type=int, callback=positive, help=_preset_help("epochs to train", "epochs"))
@click.option("--budget-minutes", type=float, callback=positive_number,
              help="train the whole epochs that fit this many minutes at the speed of a few steps timed on "
                   "this machine first, in place of --epochs (recorded in config.json)")
@click.option("--groups", type=int, callback=positive, help=_preset_help("K groups during training", "groups"))
@click.option("--iterations", type=int, callback=positive, help=_preset_help("iterations during training", "iterations"))
@click.option("--widths", callback=width_list,
              help=_preset_help("the Ladder's encoder widths, first layer first, e.g. 1600,800,400", "widths"))
@click.option("--norm", type=click.Choice(["batch", "layer"]),
              help=_preset_help("normalisation in the Ladder (layer: the paper's Tagger*)", "norm"))
@click.option("--lr", type=float, help=_preset_help("Adam's learning rate", "lr"))
@click.option("--batch-size", type=int, callback=positive, help=_preset_help("examples per step", "batch_size"))
@click.option("--initial-variance", type=float,
              help=_preset_help("v at the start, continuous inputs (docs/textures.md)", "initial_variance"))
@click.option("--delta-z-form", type=click.Choice(DELTA_Z_FORMS),
              help=_preset_help("continuous delta z: equation-4 m_k (x~ - z_k), gradient, algorithm-1", "delta_z_form"))
@click.option("--z-input", type=click.Choice(Z_INPUTS),
              help=_preset_help("binary z fed to the network: sigmoid(z), or logit as the 2016 release", "z_input"))
@click.option("--variance-map", type=click.Choice(VARIANCE_MAPS),
              help=_preset_help("continuous v from its raw parameter p: softplus(p), or exp(asinh(p)) as the "
                                "2016 release (its start p = 1 is --initial-variance 2.414)", "variance_map"))
@click.option("--likelihood-variance", type=click.Choice(LIKELIHOOD_VARIANCES),
              help=_preset_help("continuous L(m)'s variance: sigma^2 + v, or sigma^2 + v^2 as the 2016 release",
                                "likelihood_variance"))
@click.option("--m-floor", type=float,
              help=_preset_help("continuous cost: log(m_k + m-floor) in the mixture (the 2016 release: 1e-5)",
                                "m_floor"))
@click.option("--norm-epsilon", type=float,
              help=_preset_help("epsilon of the input projection's and read-outs' normalisations (the 2016 "
                                "release: 1e-10)", "norm_epsilon"))
@click.option("--tag-norm", type=click.Choice(["batch", "layer"]),
              help="normalisation of the input projection and the z and m read-outs (default: as --norm); "
                   "--norm layer --tag-norm batch: LayerNorm in the Ladder only, the read-outs over examples "
                   "and groups as the 2016 release")
@click.option("--z-norm", type=click.Choice(["batch", "layer"]),
              help="normalisation of the z read-out alone (default: as --tag-norm); --norm batch --z-norm "
                   "layer: Tagger with its z read-out per row (docs/ablations.md)")
@click.option("--m0-scale", type=float,
              help=_preset_help("m^0 = softmax over groups of this times N(0, 1) draws (docs/textures.md)", "m0_scale"))
@click.option("--m0-smoothing", type=float,
              help=_preset_help("blur m^0's N(0, 1) draws over the image by a Gaussian of this many pixels "
                                "(0: per pixel, the paper)", "m0_smoothing"))
@click.option("--initial-m", type=click.Choice(INITIAL_M),
              help=_preset_help("m^0 in training: random (the paper) or oracle, the true grouping at every "
                                "iteration 1 (a diagnostic; score it with evaluate --initial-m oracle)", "initial_m"))
@click.option("--z-rank", type=int,
              help=_preset_help("read z out through a linear map of this rank: each group's z then lies in "
                                "a subspace of this dimension (default: full rank, the paper; docs/textures.md)", "z_rank"))
@click.option("--init-from", type=click.Path(file_okay=False),
              help="start from the last checkpoint's parameters of this Tagger run (same widths and norms), "
                   "with a fresh optimizer: e.g. from the random m^0 after a run trained with --initial-m oracle")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the initial parameters and the data order")
@click.option("--seeds", callback=seed_list, help="train a population, one run per seed, as one batched computation: "
              "e.g. 0-4 or 0,3,7 (--out then holds a run directory per member)")
@click.option("--sweep-lr", callback=number_list, help="with or without --seeds: a member per learning rate, "
              "e.g. 0.0005,0.001,0.002 (a population)")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=PRECISION_CHOICE, help=f"{PRECISION_HELP} (default: auto); kept on --resume")
@click.option("--compile/--no-compile", "compile_model", default=None,
              help="torch.compile the model: ~1 min to start, faster per step (default: no; kept on --resume)")
@threads_option
@click.option("--resume", is_flag=True,
              help="continue the run in --out from its last checkpoint; only --epochs (more), --device and "
                   "--threads may change")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --out")
@click.option("--quiet", is_flag=True, help="no progress bar and no line per epoch")
def train(model, data_path, out_dir, preset, epochs, budget_minutes, groups, iterations, widths, norm, lr, batch_size,
          initial_variance, delta_z_form, z_input, variance_map, likelihood_variance, m_floor, norm_epsilon,
          tag_norm, z_norm, m0_scale, m0_smoothing, initial_m, z_rank, init_from, seed, device, precision, compile_model,
          seeds, sweep_lr, threads, resume, overwrite, quiet):
    """Train a model; writes config.json, metrics and a checkpoint per epoch to --out.

    With --seeds or --sweep-lr, a population: a run directory per member in --out."""
    from contextlib import ExitStack

    from tagmodels.device import resolve_device
    from tagmodels.training.grouping import (
        budget_epochs, check_run_config, initial_parameters, new_run_config, train_taggers,
    )
    from tagdata.atomic import new_directory
    from tagmodels.training.population_runs import POPULATION, member_names, read_population, write_population
    from tagmodels.training.precision import configure, describe
    from tagmodels.training.resume import resume_config
    from tagmodels.training.runs import RunDir

    dev = resolve_device(device)
    population = seeds is not None or sweep_lr is not None
    initial_state = None
    with ExitStack() as starting:  # every run opened, closed again if the command fails
        if budget_minutes is not None and (epochs is not None or resume or compile_model):
            raise UserError("--budget-minutes chooses the epochs of a new run from the speed of uncompiled steps: "
                            "give it without --epochs, --resume and --compile")
        if resume:
            if overwrite:
                raise UserError("--resume continues the run in --out and --overwrite replaces it: give one of them")
            if population or init_from is not None:
                raise UserError("--resume continues the members named in --out; --seeds, --sweep-lr and --init-from "
                                "start new ones")
            names = read_population(Path(out_dir))
            runs = [RunDir(out_dir)] if names is None else [RunDir(Path(out_dir) / name) for name in names]
            configs = [run.config() for run in runs]
            ctx = click.get_current_context()
            given = {name: ctx.params[param] for name, param in RESUME_OPTIONS.items()
                     if ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE}
            for run, config in zip(runs, configs):
                check_run_config(config, run.config_path)
            configure(dev, configs[0]["training"]["precision"], threads)
            for run, config in zip(runs, configs):
                for warning in resume_config(run, config, given, dev):
                    click.echo(f"Warning: {warning}", err=True)
            for run, config in zip(runs, configs):
                starting.enter_context(run.resumed(config))
        else:
            if data_path is None:
                raise UserError("--data is required for a new run")
            data_path = existing_file(data_path)
            precision = configure(dev, precision, threads)
            members = member_names(seeds or [seed], sweep_lr) if population else [(None, seed, lr)]
            def run_configs(epochs: int | None) -> list[dict]:
                return [
                    new_run_config(
                        preset, data_path, member_seed, dev, precision, bool(compile_model), epochs=epochs,
                        groups=groups, iterations=iterations, widths=widths, norm=norm,
                        lr=lr if member_lr is None else member_lr,
                        batch_size=batch_size, initial_variance=initial_variance, delta_z_form=delta_z_form,
                        z_input=z_input, variance_map=variance_map, likelihood_variance=likelihood_variance,
                        m_floor=m_floor, norm_epsilon=norm_epsilon, tag_norm=tag_norm, z_norm=z_norm,
                        m0_scale=m0_scale, m0_smoothing=m0_smoothing, z_rank=z_rank, initial_m=initial_m,
                    )
                    for _, member_seed, member_lr in members
                ]

            configs = run_configs(epochs)
            if init_from is not None:  # refused before the budget's probe if it does not fit
                initial_state, source = initial_parameters(RunDir(init_from), configs[0]["tagger"])
            if budget_minutes is not None:
                epochs, rate = budget_epochs(configs, dev, budget_minutes)
                configs = run_configs(epochs)
                for config in configs:
                    config["budget"] = {"minutes": budget_minutes, "samples_per_second": round(rate, 1), "epochs": epochs}
                if not quiet:
                    click.echo(f"{epochs} epochs fit {budget_minutes:g} min at the {rate:.0f} samples/s measured here")
            if init_from is not None:
                for config in configs:
                    config["init_from"] = source
            if population:  # a refused or failed start leaves no folder behind
                starting.enter_context(new_directory(out_dir, ignore=(POPULATION,)))
                write_population(Path(out_dir), [name for name, _, _ in members])
                runs = [RunDir(Path(out_dir) / name) for name, _, _ in members]
            else:
                runs = [RunDir(out_dir)]
            for run, config in zip(runs, configs):
                starting.enter_context(run.started(config, overwrite=overwrite))
        on_interrupt(lambda: _left_behind(out_dir))
        if not quiet:
            click.echo(describe(dev, configs[0]["training"]["precision"], configs[0]["training"]["compile"])
                       + (f"; a population of {len(runs)}" if len(runs) > 1 else ""))
        trained = train_taggers(runs, configs, dev, resume=resume, progress=not quiet, adapt_threads=threads == "auto",
                                initial_state=initial_state)
        for run, (_, outcome) in zip(runs, trained):
            if outcome.history and outcome.diverged is None:
                last = outcome.history[-1]
                click.echo(
                    f"trained {last['epoch']} epochs: cost {last['cost']:.4f}, "
                    f"valid cost {last['valid_cost']:.4f}, valid AMI {last['valid_ami']:.3f} -> {run.path}"
                )
        # Raised inside the block: a member that diverged before its first checkpoint leaves nothing.
        diverged = [(run, outcome.diverged) for run, (_, outcome) in zip(runs, trained) if outcome.diverged]
        if len(runs) == 1 and diverged:
            raise diverged[0][1]
        if diverged:
            raise UserError(f"{len(diverged)} of {len(runs)} members diverged: "
                            + "; ".join(f"{run.path.name}: {error}" for run, error in diverged))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="dataset (default: the run's own)")
@click.option("--split", default="test", show_default=True,
              help="split the AMI and ARI are scored on, one of the data file's (Shapes also: single)")
@click.option(
    "--cost-split", default="valid", show_default=True,
    help="split the denoising cost is measured on (the paper: the validation set); the AMI split when the file lacks it",
)
@click.option("--iterations", type=int, callback=positive, help="default: the preset's evaluation iterations (5)")
@click.option("--groups", type=int, callback=positive, help="default: the training K")
@click.option("--limit", type=int, callback=positive, help="evaluate only the first N examples (of each split)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the initial m and the corruption")
@click.option("--initial-m", type=click.Choice(INITIAL_M), default="random", show_default=True,
              help="m^0: the paper's random draw, or oracle: the true grouping (layer l to group l), a diagnostic "
                   "of whether the model keeps a correct grouping and explains the input better with it")
@click.option("--checkpoint", type=click.Choice(["last", "best"]), default="last", show_default=True, help=CHECKPOINT_HELP)
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="write the table as JSON here")
@click.option("--quiet", is_flag=True, help="no progress bar")
@threads_option
def evaluate(run_dir, data_path, split, cost_split, iterations, groups, limit, seed, initial_m, checkpoint, device,
             json_out, quiet, threads):
    """Per-iteration AMI, ARI, FG-ARI, mSC and denoising cost (the paper's Table 1a)."""
    from tagmodels.device import resolve_device
    from tagmodels.training.evaluate_run import evaluate_run
    from tagmodels.training.precision import set_threads
    from tagmodels.training.runs import write_json

    dev = resolve_device(device)
    set_threads(dev, threads)  # beside training runs on a shared CPU, --threads 1 keeps out of their way
    evaluation = evaluate_run(run_dir, dev, data_path, split, cost_split, iterations, groups, limit,
                              seed, checkpoint, progress=not quiet, initial_m=initial_m)
    result, rows = evaluation.record, evaluation.record["iterations"]
    click.echo(f"{run_dir} ({checkpoint} checkpoint, epoch {result['checkpoint_epoch']})  AMI on {result['split']} "
               f"({result['examples']} examples), cost on {result['denoising_cost_split']} "
               f"({result['denoising_cost_examples']}), K={result['groups']} groups"
               + (", m^0 = the true grouping" if initial_m == "oracle" else ""))
    click.echo(f"{'iteration':>9} {'AMI':>7} {'ARI':>7} {'FG-ARI':>7} {'mSC':>7} {'cost':>8}")
    for row in rows:
        click.echo(f"{row['iteration']:>9} {row['ami']:7.3f} {row['ari']:7.3f} {row['fg_ari']:7.3f} {row['msc']:7.3f} "
                   f"{row['denoising_cost']:8.4f}")
    click.echo(f"AMI after {_iterations(len(rows))}: {rows[-1]['ami']:.3f}")
    if evaluation.note:
        click.echo(f"Note: {evaluation.note}", err=True)
    if json_out:
        write_json(Path(json_out), result)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="dataset (default: the run's own)")
@click.option("--out", "png_out", required=True, type=click.Path(dir_okay=False), callback=output_file(".png"),
              help="PNG file to write")
@click.option("--split", default="test", show_default=True)
@click.option("--n", "count", type=int, default=4, show_default=True, callback=positive, help="examples to draw")
@click.option("--iterations", type=int, callback=positive, help="default: the preset's evaluation iterations (5)")
@click.option("--groups", type=int, callback=positive, help="default: the training K")
@click.option("--remove-group", type=int, help="drop this group before the last softmax (paper, Fig. 5 E2)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the initial m")
@click.option("--checkpoint", type=click.Choice(["last", "best"]), default="last", show_default=True, help=CHECKPOINT_HELP)
@click.option("--device", default=None, help=DEVICE_HELP)
def visualize(run_dir, data_path, png_out, split, count, iterations, groups, remove_group, seed, checkpoint, device):
    """Draw the groups and their reconstructions per iteration (the paper's Figures 4 and 5)."""
    from tagdata.render import save_png
    from tagmodels.device import resolve_device
    from tagmodels.tagger.visualize import tagger_figure
    from tagmodels.training.data import load_split, object_pixels
    from tagmodels.training.grouping import load_tagger
    from tagmodels.training.runs import RunDir

    dev = resolve_device(device)
    loaded = load_tagger(RunDir(run_dir), dev, checkpoint)
    model, config = loaded.model, loaded.config
    iterations = iterations or config["training"]["eval_iterations"]
    groups = groups or config["training"]["groups"]
    if remove_group is not None and not 0 <= remove_group < groups:
        raise UserError(f"--remove-group must be a group index in 0..{groups - 1}, got {remove_group}")
    data_path = existing_file(data_path or config["data"])
    data = load_split(data_path, split, dev, limit=count)
    data.check_inputs(model.config.n_inputs, data_path)
    objects = object_pixels(data_path, split, limit=count)
    figure = tagger_figure(model, data.images, objects, groups, iterations, remove_group, seed)
    save_png(figure, png_out)
    click.echo(f"wrote {png_out}: {len(data)} examples x {_iterations(iterations)}, K={groups}")


COMMANDS: list[click.Command] = [train, evaluate, visualize]
