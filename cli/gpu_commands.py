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


class _Steps:
    """The steps run so far, summarised in ``path`` after each one (so a run cut short by a
    time limit still says how far it got)."""

    def __init__(self, path: Path, summary: dict[str, Any]) -> None:
        self.path, self.summary, self.rows = path, summary, []
        self.started = time.perf_counter()

    def run(self, name: str, action: Callable[[], dict[str, Any] | None]) -> None:
        """Run ``action``, recording whether it passed, its seconds, its figures and any error."""
        from tagmodels.training.host_sync import PROJECT

        click.echo(f"gpu-check: {name}")
        started = time.perf_counter()
        row: dict[str, Any] = {"step": name}
        try:
            row.update(action() or {})
            row["ok"] = row.get("ok", True)
        except Exception as error:  # a step's failure is a result; the next step still runs
            trace = traceback.format_exc().replace(f"{PROJECT}/", "")  # results hold relative paths
            row.update(ok=False, error=f"{type(error).__name__}: {error}", traceback=trace[-3000:])
        row["seconds"] = round(time.perf_counter() - started, 3)
        click.echo(f"gpu-check: {name}: {'ok' if row['ok'] else 'FAILED'} ({row['seconds']:.1f} s)")
        self.rows.append(row)
        self.save(finished=False)

    @property
    def failed(self) -> list[str]:
        return [row["step"] for row in self.rows if not row["ok"]]

    def save(self, finished: bool) -> None:
        from tagmodels.training.runs import write_json

        write_json(self.path, {
            "ok": finished and not self.failed, "finished": finished, "failed": self.failed, **self.summary,
            "steps": self.rows, "wall_seconds": round(time.perf_counter() - self.started, 3),
        })


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
    from tagmodels.training.runs import provenance

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
    steps = _Steps(out / "gpu-check.json", {"precision": precision, **provenance(dev, seed=1)})
    steps.run("make-dataset", lambda: _tagtool(
        "make-dataset", "shapes", "--train", images, "--valid", max(10, images // 5), "--test", max(10, images // 5),
        "--single", 0, "--out", data, "--overwrite"))
    steps.run("train 2 epochs", lambda: _tagtool(*train, "--out", straight, "--epochs", 2))
    steps.run("train 1 epoch", lambda: _tagtool(*train, "--out", resumed, "--epochs", 1))
    steps.run("resume to 2 epochs", lambda: _tagtool(
        "train", "--out", resumed, "--resume", "--epochs", 2, "--device", dev, "--quiet"))
    steps.run("resume is exact", lambda: _same_parameters(straight, resumed))
    steps.run("evaluate", lambda: _tagtool(
        "evaluate", straight, "--iterations", 5, "--device", dev, "--quiet", "--json", out / "evaluate.json"))

    def clean_steps() -> dict[str, Any]:
        found = {name: [str(v) for v in violations] for name, violations in check_steps(dev, precision).items()}
        return {"ok": not any(found.values()), "precision": precision, "violations": found}

    steps.run("training steps never wait for the device", clean_steps)

    def fit_reads() -> dict[str, Any]:
        reads = {n: fit_host_reads(dev, n, work) for n in (2, 12)}
        return {"ok": reads[2] == reads[12], "host_reads_2_steps": reads[2], "host_reads_12_steps": reads[12]}

    steps.run("fit reads the device once per epoch", fit_reads)
    for preset in speed_presets or SPEED_PRESETS:
        steps.run(f"speed-train {preset}", lambda preset=preset: _tagtool(
            "speed-train", "--preset", preset, "--device", dev, "--precision", precision, "--compile", speed_compile,
            "--seconds", seconds, "--out", out / f"speed-{preset}.json"))

    steps.save(finished=True)
    if steps.failed:
        raise UserError(
            f"gpu-check: {len(steps.failed)} step(s) failed ({'; '.join(steps.failed)}); see {out / 'gpu-check.json'}"
        )
    click.echo(f"gpu-check: all {len(steps.rows)} steps passed -> {out / 'gpu-check.json'}")


COMMANDS: list[click.Command] = [gpu_check]
