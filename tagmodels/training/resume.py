"""``train --resume``: options that contradict the run are refused, not silently ignored.

A resumed run continues with the settings in its config.json. What may change is how long
it trains (more epochs than it already has) and where (the device, the threads); each
resume is recorded in config.json under ``resumes`` (by :meth:`RunDir.resumed`, which takes
the record back if the resume fails before it trains an epoch). Exact resume also needs the
same device and the same number of threads (floating-point sums are ordered by both), so a
change of either is reported, and the same data: a data file made again under the same
name (another seed, another kind) is refused by its recorded split hashes.

A run killed between its checkpoint and the files written after it (metrics.jsonl and .csv,
best.pt) has those files repaired from the checkpoint when it resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tagdata.errors import UserError
from tagmodels.training.best import Selection, save_if_best
from tagmodels.training.data import data_identity
from tagmodels.training.logs import write_metric_files
from tagmodels.training.resume_names import HELD_TRAINING_SETTINGS
from tagmodels.training.runs import RunDir, last_epoch, provenance


def held_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's value of every ``train`` option that --resume must not change."""
    training = config["training"]
    # JSON keeps the widths as a list; the option gives a tuple.
    held = {name: tuple(value) if isinstance(value := training.get(name), list) else value
            for name in HELD_TRAINING_SETTINGS}
    return {"data": config["data"], "preset": config.get("preset"), **held}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_same_data(config: dict[str, Any]) -> None:
    """Refuse to resume on a data file other than the one the run recorded (runs made
    before the record, and Fuel files, which hold no hashes, are not checked)."""
    recorded = config.get("data_identity")
    if not isinstance(recorded, dict) or not recorded.get("sha256"):
        return
    path = config["data"]
    now = data_identity(path)
    changed = [split for split, digest in recorded["sha256"].items() if now["sha256"].get(split) != digest]
    if not changed:
        return
    seeds = "" if now.get("seed") == recorded.get("seed") else (
        f", seed {now.get('seed')} where the run's had {recorded.get('seed')}"
    )
    raise UserError(
        f"{path} is not the data file this run trained on: its split hashes ({', '.join(changed)}) differ from "
        f"those in config.json (made again{seeds}?); restore that file, or start a new run"
    )


def resume_config(run: RunDir, config: dict[str, Any], given: dict[str, Any], device: torch.device) -> list[str]:
    """Update the run's ``config`` (checked with ``check_run_config``) for this resume,
    after checking the checkpoint reads and the data are the run's; returns warnings to
    show. Nothing is written here: :meth:`RunDir.resumed` records the resume.

    ``given`` holds the options typed on the command line (not their defaults).
    """
    held = held_settings(config)
    for name, value in given.items():
        if name == "epochs":
            continue
        if name == "data":
            value = str(Path(value).resolve())
        if value != held[name]:
            raise UserError(
                f"{_option(name)} {value} contradicts the run's {name} {held[name]} ({run.config_path}); "
                "--resume continues with the run's own settings (only --epochs and --device may change)"
            )
    check_same_data(config)
    checkpoint = run.load_checkpoint()
    done = 0 if checkpoint is None else len(checkpoint["history"])
    epochs = given.get("epochs", config["training"]["epochs"])
    if epochs < done:
        raise UserError(f"--epochs {epochs}: {run.path} has already trained {done} epochs; give at least {done}")
    now = provenance(device, config["training"]["seed"])
    before = config.get("resumes", [config.get("provenance", {})])[-1]
    warnings = [
        f"this run last trained with {what} {before[key]}, now {now[key]}: it will not match an "
        "uninterrupted run bit for bit"
        for key, what in (("device", "device"), ("threads", "threads"))
        if before.get(key) is not None and before[key] != now[key]
    ]
    config["training"]["epochs"] = epochs
    config.setdefault("resumes", []).append({"after_epoch": done, "epochs": epochs, **now})
    return warnings


def repair_run_files(run: RunDir, history: list[dict[str, Any]], keep_best: Selection | None,
                     model: torch.nn.Module) -> None:
    """Bring the files written after a checkpoint up to it (``model`` holds its parameters).

    metrics.jsonl and .csv are rewritten when they do not hold exactly the checkpoint's
    history (a kill before their line, a line cut short); best.pt, written after
    checkpoint.pt, is rewritten when the checkpoint's epoch is the best but best.pt holds
    an earlier one (a kill or a full disk between the two writes).
    """
    try:
        logged = run.history()
    except UserError:
        logged = None
    if logged != history:
        write_metric_files(run, history)
    if keep_best is None or not history or keep_best.best_epoch(history) != history[-1]["epoch"]:
        return
    best = run.load_checkpoint(which="best")
    if best is None or last_epoch(best["history"]) != history[-1]["epoch"]:
        save_if_best(run, keep_best, history, model)
