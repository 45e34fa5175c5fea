"""`tagtool gpu-check`: the one prepared check of the CUDA path, for a few minutes of a GPU.

Each step runs the ordinary commands in this process (so a GPU window pays for one start of
torch) and records its outcome; a failing step is recorded and the next one still runs.
Everything lands under --out: the steps' own JSON and gpu-check.json, the summary, ready to
commit; the dataset and the runs they come from lie in --out/work.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable

import click
from tagtool_cli.options import DEVICE_HELP

from tagmodels.tagger.presets import PRESETS

SPEED_PRESETS = ("shapes-paper", "texture-paper")


def _tagtool(*args: Any) -> None:
    """Run one tagtool command in this process; a failure raises (click's own exception)."""
    from tagtool_cli.main import tagtool

    tagtool.main([str(arg) for arg in args], prog_name="tagtool", standalone_mode=False)


def _step(name: str, action: Callable[[], dict[str, Any] | None], steps: list[dict[str, Any]]) -> None:
    """Run ``action``, recording whether it passed, its seconds, its figures and any error."""
    click.echo(f"gpu-check: {name}")
    started = time.perf_counter()
    row: dict[str, Any] = {"step": name}
    try:
        row.update(action() or {})
        row["ok"] = row.get("ok", True)
    except BaseException as error:  # noqa: BLE001  (a step's failure is a result; Ctrl-C still stops)
        if isinstance(error, KeyboardInterrupt):
            raise
        from tagmodels.training.host_sync import PROJECT

        trace = traceback.format_exc().replace(f"{PROJECT}/", "")  # results hold relative paths
        row.update(ok=False, error=f"{type(error).__name__}: {error}", traceback=trace[-3000:])
    row["seconds"] = round(time.perf_counter() - started, 3)
    click.echo(f"gpu-check: {name}: {'ok' if row['ok'] else 'FAILED'} ({row['seconds']:.1f} s)")
    steps.append(row)


def _same_parameters(a: Path, b: Path) -> dict[str, Any]:
    """Whether two runs' last checkpoints hold equal parameters (an exact resume), and the largest gap."""
    import torch

    first = torch.load(a / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    second = torch.load(b / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    gap = max((first[name].float() - second[name].float()).abs().max().item() for name in first)
    return {"ok": first.keys() == second.keys() and gap == 0.0, "largest_difference": gap}


@click.command("gpu-check")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder for every result")
@click.option("--device", default="cuda", show_default=True, help=DEVICE_HELP)
@click.option("--images", type=int, default=500, show_default=True,
              help="training images of the smoke run's Shapes set")
@click.option("--speed-preset", "speed_presets", type=click.Choice(sorted(PRESETS)), multiple=True,
              help=f"presets speed-train measures (repeat; default: {', '.join(SPEED_PRESETS)})")
@click.option("--speed-compile", type=click.Choice(["off", "on", "both"]), default="both", show_default=True,
              help="speed-train without and/or with torch.compile")
@click.option("--seconds", type=float, default=5.0, show_default=True, help="speed-train's time per measured setting")
def gpu_check(out_dir, device, images, speed_presets, speed_compile, seconds):
    """Smoke-test training, resume and evaluation on a device, check every training step for host syncs
    (CUDA's sync debug mode on), and measure training speed; all as JSON under --out."""
    from tagdata.errors import UserError
    from tagmodels.device import resolve_device
    from tagmodels.gpu.steps import check_steps, fit_host_reads
    from tagmodels.training.precision import resolve_precision
    from tagmodels.training.runs import provenance, write_json

    if images < 10:
        raise UserError(f"--images must be at least 10, got {images}")
    if seconds <= 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    dev = resolve_device(device)
    precision = resolve_precision("auto", dev)
    out = Path(out_dir)
    work = out / "work"  # the dataset and runs; the JSON results lie beside it
    work.mkdir(parents=True, exist_ok=True)
    data, straight, resumed = work / "shapes.h5", work / "run-straight", work / "run-resumed"
    train = ("train", "--data", data, "--preset", "shapes-small", "--device", dev, "--seed", 1, "--quiet",
             "--overwrite")
    started = time.perf_counter()
    steps: list[dict[str, Any]] = []

    _step("make-dataset", lambda: _tagtool(
        "make-dataset", "shapes", "--train", images, "--valid", max(10, images // 5), "--test", max(10, images // 5),
        "--single", 0, "--out", data, "--overwrite"), steps)
    _step("train 2 epochs", lambda: _tagtool(*train, "--out", straight, "--epochs", 2), steps)
    _step("train 1 epoch", lambda: _tagtool(*train, "--out", resumed, "--epochs", 1), steps)
    _step("resume to 2 epochs", lambda: _tagtool(
        "train", "--out", resumed, "--resume", "--epochs", 2, "--device", dev, "--quiet"), steps)
    _step("resume is exact", lambda: _same_parameters(straight, resumed), steps)
    _step("evaluate", lambda: _tagtool(
        "evaluate", straight, "--iterations", 5, "--device", dev, "--quiet", "--json", out / "evaluate.json"), steps)

    def clean_steps() -> dict[str, Any]:
        found = {name: [str(v) for v in violations] for name, violations in check_steps(dev, precision).items()}
        return {"ok": not any(found.values()), "precision": precision, "violations": found}

    _step("training steps never wait for the device", clean_steps, steps)

    def fit_reads() -> dict[str, Any]:
        reads = {n: fit_host_reads(dev, n, work) for n in (2, 12)}
        return {"ok": reads[2] == reads[12], "host_reads_2_steps": reads[2], "host_reads_12_steps": reads[12]}

    _step("fit reads the device once per epoch", fit_reads, steps)
    for preset in speed_presets or SPEED_PRESETS:
        _step(f"speed-train {preset}", lambda preset=preset: _tagtool(
            "speed-train", "--preset", preset, "--device", dev, "--precision", precision, "--compile", speed_compile,
            "--seconds", seconds, "--out", out / f"speed-{preset}.json"), steps)

    failed = [row["step"] for row in steps if not row["ok"]]
    write_json(out / "gpu-check.json", {
        "ok": not failed, "failed": failed, "precision": precision, "steps": steps,
        "wall_seconds": round(time.perf_counter() - started, 3), **provenance(dev, seed=1),
    })
    if failed:
        raise UserError(f"gpu-check: {len(failed)} step(s) failed ({'; '.join(failed)}); see {out / 'gpu-check.json'}")
    click.echo(f"gpu-check: all {len(steps)} steps passed -> {out / 'gpu-check.json'}")


COMMANDS: list[click.Command] = [gpu_check]
