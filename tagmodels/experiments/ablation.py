"""A learning check that tells a working Tagger from a broken one: full TAG against ablations.

Three variants on the same data and preset: the full model, one fed zeros for delta z, one
fed zeros for L(m). Each is evaluated per iteration (AMI on the test split); inference
that uses the paper's two error signals (Section 2.1) should group clearly better than
either ablation, and improve over iterations. With several seeds each variant trains its
seeds as one population, and the report gives each seed's curve and the median and range of
the final AMI, so that a difference can be told from seed noise. Every run is resumable, so
the check can be stopped and continued.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from tagdata.provenance import portable_path
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.training.data import load_split
from tagmodels.training.grouping import new_run_config, train_taggers
from tagmodels.training.loop import training_seconds
from tagmodels.training.runs import RunDir, provenance

VARIANTS: dict[str, tuple[str, ...]] = {"full": (), "no-delta-z": ("delta_z",), "no-likelihood": ("likelihood",)}


def _variant_runs(out: Path, name: str, seeds: list[int]) -> list[RunDir]:
    """A variant's run directory: out/NAME for one seed, out/NAME/seed-S for several."""
    if len(seeds) == 1:
        return [RunDir(out / name)]
    (out / name).mkdir(exist_ok=True)
    return [RunDir(out / name / f"seed-{seed}") for seed in seeds]


def run_ablation(
    data: str, out: Path, preset: str, seeds: list[int], device: torch.device, iterations: int,
    precision: str = "fp32", progress: bool = False, log: Callable[[str], None] = print,
    adapt_threads: bool = False, **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) the three variants under ``out``, each seed of a variant in one
    population, and score each run per iteration."""
    out.mkdir(parents=True, exist_ok=True)
    test = load_split(data, "test", device)
    result: dict[str, Any] = {"data": portable_path(data), "preset": preset, "overrides": overrides,
                              "precision": precision, "ami_average_method": PAPER_AMI_AVERAGE, "seeds": seeds,
                              "variants": {}}
    for name, zeroed in VARIANTS.items():
        runs, configs = _variant_runs(out, name, seeds), []
        for run, seed in zip(runs, seeds):
            if run.config_path.exists():
                configs.append(run.config())
            else:
                config = new_run_config(preset, data, seed, device, precision, **overrides)
                config["tagger"]["zeroed_inputs"] = list(zeroed)
                run.create(config)
                configs.append(config)
        trained = train_taggers(runs, configs, device, resume=True, progress=progress, adapt_threads=adapt_threads)
        curves = {}
        for seed, config, (model, outcome) in zip(seeds, configs, trained):
            if outcome.diverged is not None:
                raise outcome.diverged
            training = config["training"]
            rows = evaluate_grouping(model, test.x, test.segmentation, training["groups"], iterations,
                                     training["batch_size"])
            curves[seed] = {
                "epochs": len(outcome.history),
                "train_seconds": training_seconds(outcome.history),
                "ami": [round(row["ami"], 4) for row in rows],
                "denoising_cost": [round(row["denoising_cost"], 5) for row in rows],
            }
        result["variants"][name] = {"zeroed_inputs": list(zeroed), **_summary(curves)}
        log(f"{name:>14}: AMI per iteration {' '.join(f'{a:.3f}' for a in result['variants'][name]['ami'])}"
            + (f" (median of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
    return {**result, **provenance(device, seeds[0])}


def _summary(curves: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One seed's curves as they are; several seeds' per-iteration medians, each seed's curve,
    and the median and range of the final AMI."""
    if len(curves) == 1:
        return next(iter(curves.values()))
    per_seed = list(curves.values())
    final = [curve["ami"][-1] for curve in per_seed]
    return {
        "epochs": per_seed[0]["epochs"],
        "train_seconds": per_seed[0]["train_seconds"],  # the population's: its members train together
        "ami": [round(statistics.median(values), 4) for values in zip(*(curve["ami"] for curve in per_seed))],
        "denoising_cost": [round(statistics.median(values), 5)
                           for values in zip(*(curve["denoising_cost"] for curve in per_seed))],
        "final_ami": {"median": round(statistics.median(final), 4), "min": min(final), "max": max(final)},
        "per_seed": {str(seed): curve for seed, curve in curves.items()},
    }
