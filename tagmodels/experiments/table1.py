"""Table 1 from several evaluations: the paper reports medians over 20 seeds (Section 3.2).

Each input is a JSON written by ``tagtool evaluate --json`` for one trained run. Runs are
grouped by their model: the normalisation (BatchNorm: "Tagger", LayerNorm: "Tagger*") and
whatever else differs from the paper's model (``model_changes``, named in the row, e.g.
"Tagger (z_norm layer)"). Per model and iteration the median, the standard deviation and the
number of runs of the AMI and of the denoising cost are given beside the paper's Table 1a for
that norm, and the last iteration's AMI beside Table 1b. Evaluations that differ in what they
measure (AMI normalisation, groups, iterations, data) are refused rather than mixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tagdata.errors import UserError
from tagmodels.paper import TABLE_1A, TABLE_1B

MODEL_NAMES = {"batch": "Tagger", "layer": "Tagger*"}
MUST_AGREE = ("ami_average_method", "groups", "split", "denoising_cost_split")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        training, rows = data["training"], data["iterations"]
        # every field aggregate() reads, of the type it needs
        if not (training["norm"] in MODEL_NAMES and isinstance(training["seed"], int) and "epochs" in training
                and rows and all(isinstance(row[key], (int, float))
                                 for row in rows for key in ("ami", "denoising_cost"))):
            raise TypeError
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        raise UserError(f"{path} is not an evaluation written by `tagtool evaluate --json`") from None
    if data.get("ami_average_method") is None:
        raise UserError(f"{path} does not name its AMI normalisation: evaluate the run again")
    return data


def _changes(training: dict[str, Any]) -> dict[str, Any]:
    """How the run's model differs from the paper's Tagger or Tagger*, its norm aside."""
    if "model_changes" not in training:  # evaluated before evaluate recorded it: its preset says
        preset = training.get("preset")
        return {} if preset == "shapes-paper" else {"preset": preset}
    return {key: value for key, value in training["model_changes"].items() if key != "norm"}


def model_name(training: dict[str, Any]) -> str:
    """Tagger (BatchNorm) or Tagger* (LayerNorm), with whatever else differs from the paper's
    model named, so that runs of different models are never pooled into one row."""
    name = MODEL_NAMES[training["norm"]]
    changes = _changes(training)
    if not changes:
        return name
    shown = ", ".join(f"{key} {'-'.join(map(str, value)) if isinstance(value, list) else value}"
                      for key, value in changes.items())
    return f"{name} ({shown})"


def _summary(values: list[float]) -> dict[str, float | int]:
    array = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(array)), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "n": len(array)}


def aggregate(paths: list[Path]) -> dict[str, Any]:
    """Median, standard deviation and n per model and iteration, beside the paper's figures."""
    if not paths:
        raise UserError("give at least one evaluation JSON")
    evaluations = [(path, _load(path)) for path in paths]
    first_path, first = evaluations[0]
    for path, data in evaluations[1:]:
        for key in MUST_AGREE:
            if data.get(key) != first.get(key):
                raise UserError(f"{path} and {first_path} differ in {key}: {data.get(key)!r} against {first.get(key)!r}")
    variants: dict[str, list[dict[str, Any]]] = {}
    for norm in MODEL_NAMES:  # Tagger's rows before Tagger*'s, each model's in order of the files
        for _, data in evaluations:
            if data["training"]["norm"] == norm:
                variants.setdefault(model_name(data["training"]), []).append(data)
    models: dict[str, Any] = {}
    for name, runs in variants.items():
        norm = runs[0]["training"]["norm"]
        depth = min(len(data["iterations"]) for data in runs)
        rows = []
        for i in range(depth):
            row = {
                "iteration": i + 1,
                "ami": _summary([data["iterations"][i]["ami"] for data in runs]),
                "denoising_cost": _summary([data["iterations"][i]["denoising_cost"] for data in runs]),
            }
            if i < len(TABLE_1A[norm]["ami"]):
                row["paper"] = {"ami": TABLE_1A[norm]["ami"][i], "denoising_cost": TABLE_1A[norm]["denoising_cost"][i]}
            rows.append(row)
        models[name] = {
            "norm": norm,
            "model_changes": _changes(runs[0]["training"]),
            "runs": [
                {"seed": data["training"]["seed"], "epochs": data["training"]["epochs"],
                 "trained_epochs": data.get("checkpoint_epoch")}
                for data in runs
            ],
            "iterations": rows,
            "table_1b": {"ami": rows[-1]["ami"], "iteration": depth, "paper": TABLE_1B[MODEL_NAMES[norm]]},
        }
    return {
        "inputs": [str(path) for path, _ in evaluations],
        **{key: first.get(key) for key in MUST_AGREE},
        "models": models,
    }


def render(table: dict[str, Any]) -> str:
    """Tables 1a and 1b as markdown."""
    lines = [
        f"# Table 1 from {len(table['inputs'])} evaluations",
        "",
        f"AMI ({table['ami_average_method']} normalisation) on the {table['split']} split, denoising cost on "
        f"the {table['denoising_cost_split']} split, K = {table['groups']} groups. Ours: median ± std (n runs); "
        "the paper: medians over 20 seeds.",
        "",
        *[f"- {name}: {_runs(model['runs'])}" for name, model in table["models"].items()],
        "",
        "From " + ", ".join(f"`{path}`" for path in table["inputs"])
        + " (each records its command, commit, device, seed and wall time).",
        "",
        "## Table 1a",
        "",
        "| model | iteration | AMI | paper | denoising cost | paper |",
        "|---|---|---|---|---|---|",
    ]
    for name, model in table["models"].items():
        for row in model["iterations"]:
            paper = row.get("paper", {})
            lines.append(
                f"| {name} | {row['iteration']} | {_cell(row['ami'], 3)} | {_paper(paper.get('ami'), 2)} "
                f"| {_cell(row['denoising_cost'], 4)} | {_paper(paper.get('denoising_cost'), 3)} |"
            )
    lines += ["", "## Table 1b (AMI after the last iteration)", "", "| model | ours | paper |", "|---|---|---|"]
    for name, model in table["models"].items():
        paper = model["table_1b"]["paper"]
        lines.append(f"| {name} | {_cell(model['table_1b']['ami'], 3)} | {paper[0]:.2f} ± {paper[1]:.3f} |")
    return "\n".join(lines) + "\n"


def _runs(runs: list[dict[str, Any]]) -> str:
    """Seeds and epochs per run, saying plainly which were cut short of their planned epochs."""
    described = []
    for run in runs:
        trained, planned = run["trained_epochs"], run["epochs"]
        short = " (cut short)" if trained is not None and trained < planned else ""
        described.append(f"seed {run['seed']}, {'?' if trained is None else trained} of {planned} epochs{short}")
    return "; ".join(described)


def _cell(summary: dict[str, float | int], digits: int) -> str:
    return f"{summary['median']:.{digits}f} ± {summary['std']:.{digits}f} ({summary['n']})"


def _paper(value: float | None, digits: int) -> str:
    """A figure of the paper's tables printed with the digits the paper prints (0.70, not 0.7)."""
    return "" if value is None else f"{value:.{digits}f}"
