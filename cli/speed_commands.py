"""`tagtool` commands that measure speed: speed-train (samples/s beside the matmul bound),
speed-population (P runs as one against P separate runs) and speed-contention (training
beside other work)."""

from __future__ import annotations

from pathlib import Path

import click
from tagtool_cli.options import DEVICE_HELP, positive
from tagtool_cli.outputs import output_file

from tagdata.errors import UserError
from tagmodels.tagger.presets import PRESETS
from tagmodels.training.precision_names import PRECISIONS


def _report(result: dict, json_out: str | None) -> None:
    """A measurement's JSON: to --out, else to standard output."""
    import json

    from tagmodels.training.runs import write_json

    if json_out:
        write_json(Path(json_out), result)
    else:
        click.echo(json.dumps(result, indent=2))


@click.command("speed-train")
@click.option(
    "--model", type=click.Choice(["tagger"]), default="tagger", show_default=True,
    help="the unsupervised Tagger; the baselines train through `tagtool benchmark`",
)
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="shapes-paper", show_default=True)
@click.option("--norm", type=click.Choice(["batch", "layer"]), help="override the preset's normalisation (layer: Tagger*)")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", "precisions", type=click.Choice(PRECISIONS), multiple=True,
              help="precisions to measure (repeat the option; default: both)")
@click.option("--compile", "compile_settings", type=click.Choice(["off", "on", "both"]), default="both",
              show_default=True, help="measure without and/or with torch.compile")
@click.option("--threads", default="auto", show_default=True, help="CPU threads: a number, or auto (the cores other processes leave free)")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="time spent measuring each step")
@click.option("--out", "json_out", type=click.Path(dir_okay=False), callback=output_file(),
              help="write the JSON here too")
def speed_train(model, preset, norm, device, precisions, compile_settings, threads, seconds, json_out):
    """Training samples per second, per precision and compilation, beside this device's matmul bound."""
    import time

    from tagdata.provenance import bf16_features
    from tagmodels.device import resolve_device
    from tagmodels.speed.training import measure_training_speed
    from tagmodels.training.precision import configure
    from tagmodels.training.runs import provenance

    if seconds <= 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    dev = resolve_device(device)
    configure(dev, "fp32", threads)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_settings]
    started = time.perf_counter()
    settings = []
    for precision in precisions or PRECISIONS:
        for compile_model in compiles:
            row = measure_training_speed(
                preset, dev, seconds=seconds, precision=precision, compile=compile_model, norm=norm
            )
            parts = row["breakdown"]
            click.echo(
                f"{precision:>5} {'compiled' if compile_model else 'eager':>8}: {row['samples_per_second']:7.1f} "
                f"samples/s, {100 * row['fraction_of_bound']:.0f} % of the {precision} matmul bound "
                f"({100 * row['fraction_of_device_peak']:.0f} % of the device's {row['device_matmul_tflops']:.3g} TFLOP/s); "
                f"per profiled step {parts['profiled_step_ms']:.1f} ms: matmul {parts['matmul_ms']:.1f} "
                f"(bound {row['matmul_bound_ms']:.1f}), optimizer {parts['optimizer_ms']:.1f}, other {parts['other_ms']:.1f}"
            )
            settings.append(row)
    result = {
        "preset": preset,
        "settings": settings,
        **bf16_features(),
        "wall_seconds": round(time.perf_counter() - started, 3),
        **provenance(dev, seed=0),
    }
    _report(result, json_out)


@click.command("speed-population")
@click.option("--preset", "presets", type=click.Choice(sorted(PRESETS)), multiple=True,
              help="presets to measure (repeat the option; default: shapes-small and shapes-paper)")
@click.option("--members", type=int, default=5, show_default=True, callback=positive, help="P, the population's size")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--threads", default="auto", show_default=True, help="CPU threads: a number, or auto (the cores other processes leave free)")
@click.option("--seconds", type=float, default=5.0, show_default=True, help="time spent measuring each step, per round")
@click.option("--out", "json_out", type=click.Path(dir_okay=False), callback=output_file(), help="write the JSON here")
def speed_population(presets, members, device, precision, threads, seconds, json_out):
    """Samples/s of a population of P runs trained as one, against the P runs one after another."""
    import time

    import torch

    from tagmodels.device import resolve_device
    from tagmodels.speed.population import measure_population_speed
    from tagmodels.training.precision import configure
    from tagmodels.training.runs import provenance

    if seconds <= 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    dev = resolve_device(device)
    configure(dev, precision, threads)
    started = time.perf_counter()
    rows = []
    for preset in presets or ("shapes-small", "shapes-paper"):
        row = measure_population_speed(preset, dev, members, seconds, precision)
        click.echo(f"{preset}: a population of {members} {row['population_samples_per_second']:.1f} samples/s batched "
                   f"({row['speedup']:.2f}x), {row['member_by_member_samples_per_second']:.1f} member by member "
                   f"({row['member_by_member_speedup']:.2f}x), {members} separate runs "
                   f"{row['separate_samples_per_second']:.1f}")
        rows.append(row)
    result = {
        "settings": rows,
        "wall_seconds": round(time.perf_counter() - started, 3),
        **provenance(dev, seed=0),
    }
    _report(result, json_out)


@click.command("speed-contention")
@click.option("--threads", "thread_settings", multiple=True,
              help="thread settings to compare (repeat; default: auto and 2)")
@click.option("--images", type=int, default=3000, show_default=True, help="Shapes training images per run")
@click.option("--epochs", type=int, default=2, show_default=True)
@click.option("--out", "json_out", type=click.Path(dir_okay=False), callback=output_file(), help="write the JSON here")
def speed_contention(thread_settings, images, epochs, json_out):
    """A short training run alone, beside one busy process, and two at once, per thread setting."""
    import os
    import time

    from tagdata.provenance import bf16_features, cpu_model
    from tagmodels.speed.contention import measure_contention
    from tagmodels.training.runs import provenance

    if images < 1 or epochs < 1:
        raise UserError("--images and --epochs must be at least 1")
    started = time.perf_counter()
    result = measure_contention(list(thread_settings) or ["auto", "2"], images, epochs)
    for row in result["settings"]:
        click.echo(
            f"threads {row['threads']:>4}: alone {row['alone_seconds']:6.1f} s, beside a busy process "
            f"{row['beside_busy_seconds']:6.1f} s ({row['beside_busy_slowdown']}x), two at once "
            f"{row['two_at_once_seconds']:6.1f} s ({row['two_at_once_slowdown']}x)"
        )
    result.update({"cpu": cpu_model(), "cores": os.cpu_count(), **bf16_features(),
                   "wall_seconds": round(time.perf_counter() - started, 2), **provenance("cpu")})
    _report(result, json_out)


COMMANDS: list[click.Command] = [speed_train, speed_population, speed_contention]
