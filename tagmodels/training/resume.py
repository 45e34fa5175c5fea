"""``train --resume``: options that contradict the run are refused, not silently ignored.

A resumed run continues with the settings in its config.json. What may change is how long
it trains (more epochs than it already has) and where (the device, the threads); each
resume is recorded in config.json under ``resumes``. Exact resume also needs the same device and the
same number of threads (floating-point sums are ordered by both), so a change of either is
reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tagdata.errors import UserError
from tagmodels.training.resume_names import HELD_TRAINING_SETTINGS
from tagmodels.training.runs import RunDir, provenance, write_json


def held_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's value of every ``train`` option that --resume must not change."""
    training = config["training"]
    held = {name: training.get(name) for name in HELD_TRAINING_SETTINGS}
    return {"data": config["data"], "preset": config.get("preset"), **held}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_config(run: RunDir, config: dict[str, Any], given: dict[str, Any], device: torch.device) -> list[str]:
    """Update the run's ``config`` (checked with ``check_run_config``) for this resume and
    record it in config.json; returns warnings to show.

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
    done = len(run.history())
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
    write_json(run.config_path, config)
    return warnings
