"""A trained Tagger run scored in the layout of the paper's Table 1a, as the JSON that
``tagtool evaluate --json`` writes and ``tagtool table1`` aggregates (one function for both,
so that ``tagtool reproduce`` writes the very same record)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import tagdata
from tagdata.errors import UserError
from tagdata.provenance import portable_path
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.paper import SHAPES_TRAINING_HOURS, table_1a_beside
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.tagger.tag_names import INITIAL_M
from tagmodels.training.data import load_split, most_objects
from tagmodels.training.grouping import load_tagger
from tagmodels.training.loop import training_seconds
from tagmodels.training.progress import forward_progress
from tagmodels.training.runs import RunDir, last_epoch, provenance


@dataclass
class Evaluation:
    """The record (Table 1a's rows and what they were measured on) and a note when the AMI means nothing."""

    record: dict[str, Any]
    note: str | None


def evaluate_run(
    run_dir: str, device: torch.device, data_path: str | None = None, split: str = "test", cost_split: str = "valid",
    iterations: int | None = None, groups: int | None = None, limit: int | None = None, seed: int = 0,
    checkpoint: str = "last", progress: bool = False, initial_m: str = "random",
) -> Evaluation:
    """AMI and ARI on clean ``split``, the denoising cost on ``cost_split`` (Section 3.1: on the
    validation set; the AMI split when the file lacks it), per iteration; from the random m^0,
    or with ``initial_m`` "oracle" from the true grouping (a diagnostic)."""
    if initial_m not in INITIAL_M:
        raise UserError(f"unknown initial m {initial_m!r}; choose one of {', '.join(INITIAL_M)}")
    run = RunDir(run_dir)
    loaded = load_tagger(run, device, checkpoint)
    model, config = loaded.model, loaded.config
    training = config["training"]
    data_path = data_path or config["data"]
    if not Path(data_path).is_file():
        raise UserError(f"data file {data_path} does not exist")
    iterations = iterations or training["eval_iterations"]
    groups = groups or training["groups"]
    data = load_split(data_path, split, device, limit)
    data.check_inputs(model.config.n_inputs, data_path)
    with tagdata.open_dataset(data_path) as file:
        if cost_split not in file.splits:
            cost_split = split
    cost_data = data if cost_split == split else load_split(data_path, cost_split, device, limit)
    started = time.perf_counter()
    # Two passes: clean input (AMI, ARI, how well the groups' z explain each true layer),
    # corrupted input (the cost).
    with forward_progress(model, len(data) + len(cost_data), "evaluating", enabled=progress):
        rows = evaluate_grouping(
            model, data.x, data.segmentation, groups, iterations, training["batch_size"], seed, cost_x=cost_data.x,
            cost_segmentation=cost_data.segmentation, oracle=initial_m == "oracle", layer_rms=True,
        )
    rows = [{**row, "layer_rms": {name: [None if r is None else round(r, 5) for r in values]
                                  for name, values in row["layer_rms"].items()}}
            for row in rows]
    seconds = time.perf_counter() - started
    # The epoch the evaluated checkpoint holds, by its own history; the run's whole history is
    # the last checkpoint's (metrics.jsonl may lag it), else metrics.jsonl.
    epoch = last_epoch(loaded.history)
    history = loaded.history if checkpoint == "last" else run.history()
    note = None
    if most_objects(data.segmentation) <= 1:
        note = (f"every image of the {split} split has at most one scored object: AMI compares a grouping "
                "with a single true group and means nothing here; the denoising cost does")
    record = {
        "run": portable_path(run_dir),
        "checkpoint": checkpoint,
        "checkpoint_epoch": epoch,
        "data": portable_path(data_path),
        "split": split,
        "examples": len(data),
        "ami_average_method": PAPER_AMI_AVERAGE,
        "denoising_cost_split": cost_split,
        "denoising_cost_examples": len(cost_data),
        "groups": groups,
        "initial_m": initial_m,
        **({"note": note} if note else {}),
        "iterations": rows,
        "wall_seconds": round(seconds, 3),
        "training": {
            "preset": config.get("preset"),
            "seed": config["training"]["seed"],
            "norm": model.config.norm,
            # What makes the model another than the paper's; `tagtool table1` keeps such runs apart.
            "model_changes": model.config.changes(),
            "epochs": len(history),
            "seconds": training_seconds(history),
            **{key: config.get("provenance", {}).get(key) for key in ("device", "commit", "command")},
            **{key: config[key] for key in ("budget", "init_from") if key in config},  # train --budget-minutes, --init-from
        },
        **provenance(device, seed),
    }
    if data.kind == "shapes" and groups == 4:
        record["paper_table_1a"] = {
            "model": "Tagger*" if model.config.norm == "layer" else "Tagger",
            "iterations": table_1a_beside(model.config.norm, rows),
            "training_hours": SHAPES_TRAINING_HOURS,
        }
    return Evaluation(record, note)
