"""Ablations with seeds: variants of one base run, each trained as a population of seeds.

The default study is a learning check that tells a working Tagger from a broken one: the
full model against one fed zeros for delta z and one fed zeros for L(m); inference that uses
the paper's two error signals (Section 2.1) should group clearly better than either, and
improve over iterations. Other studies (ablation_studies.py) change one setting each. Every
run is scored per iteration, and with several seeds the report gives each seed's curve and
the median and range of the final AMI, so that a difference can be told from seed noise.
Every run is resumable, and the report is rewritten after each variant, so a study can be
stopped and continued.
"""

from __future__ import annotations

import statistics
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch

from tagdata.provenance import portable_path
from tagmodels.experiments.ablation_studies import Variants
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.tagger.presets import Preset
from tagmodels.training.data import load_split
from tagmodels.training.grouping import new_run_config, train_taggers
from tagmodels.training.loop import training_seconds
from tagmodels.training.runs import RunDir, provenance

PRESET_FIELDS = frozenset(field.name for field in fields(Preset))


def _variant_runs(out: Path, name: str, seeds: list[int]) -> list[RunDir]:
    """A variant's run directory: out/NAME for one seed, out/NAME/seed-S for several."""
    if len(seeds) == 1:
        return [RunDir(out / name)]
    (out / name).mkdir(exist_ok=True)
    return [RunDir(out / name / f"seed-{seed}") for seed in seeds]


def _variant_config(
    preset: str, data: str, seed: int, device: torch.device, precision: str, overrides: dict[str, Any],
    variant: dict[str, Any],
) -> dict[str, Any]:
    """config.json of one seed of a variant: its preset fields over the command line's
    overrides, the rest set on the model (TaggerConfig)."""
    config = new_run_config(preset, data, seed, device, precision,
                            **{**overrides, **{k: v for k, v in variant.items() if k in PRESET_FIELDS}})
    config["tagger"].update({k: v for k, v in variant.items() if k not in PRESET_FIELDS})
    return config


def run_ablation(
    data: str, out: Path, preset: str, seeds: list[int], device: torch.device, iterations: int,
    variants: Variants, precision: str = "fp32", split: str = "test", progress: bool = False,
    log: Callable[[str], None] = print, adapt_threads: bool = False,
    report: Callable[[dict[str, Any]], None] | None = None, **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) ``variants`` under ``out``, each variant's seeds as one population,
    and score each run per iteration on ``split``; ``report`` receives the result so far
    after every variant."""
    out.mkdir(parents=True, exist_ok=True)
    scored = load_split(data, split, device)
    stamp = provenance(device, seeds[0])
    result: dict[str, Any] = {"data": portable_path(data), "preset": preset, "overrides": overrides,
                              "precision": precision, "split": split, "ami_average_method": PAPER_AMI_AVERAGE,
                              "seeds": seeds, "variants": {}}
    for name, variant in variants.items():
        runs, configs = _variant_runs(out, name, seeds), []
        for run, seed in zip(runs, seeds):
            if run.config_path.exists():
                configs.append(run.config())
            else:
                config = _variant_config(preset, data, seed, device, precision, overrides, variant)
                run.create(config)
                configs.append(config)
        trained = train_taggers(runs, configs, device, resume=True, progress=progress, adapt_threads=adapt_threads)
        curves = {}
        for seed, config, (model, outcome) in zip(seeds, configs, trained):
            if outcome.diverged is not None:
                raise outcome.diverged
            training = config["training"]
            rows = evaluate_grouping(model, scored.x, scored.segmentation, training["groups"], iterations,
                                     training["batch_size"])
            curves[seed] = {
                "epochs": len(outcome.history),
                "train_seconds": training_seconds(outcome.history),
                "ami": [round(row["ami"], 4) for row in rows],
                "denoising_cost": [round(row["denoising_cost"], 5) for row in rows],
                "valid_ami_per_epoch": [round(row["valid_ami"], 4) for row in outcome.history],
            }
        result["variants"][name] = {"changes": variant, **_summary(curves)}
        log(f"{name:>14}: AMI per iteration {' '.join(f'{a:.3f}' for a in result['variants'][name]['ami'])}"
            + (f" (median of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
        if report is not None:
            report({**result, **stamp})
    return {**result, **stamp}


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
        "valid_ami_per_epoch": [round(statistics.median(values), 4)
                                for values in zip(*(curve["valid_ami_per_epoch"] for curve in per_seed))],
        "final_ami": {"median": round(statistics.median(final), 4), "min": min(final), "max": max(final)},
        "per_seed": {str(seed): curve for seed, curve in curves.items()},
    }


def render(result: dict[str, Any], title: str) -> str:
    """The study as a markdown table: AMI after 3 (or fewer) and after the last iteration, median and
    range over the seeds, and the difference of the medians from the first variant's."""
    variants = result["variants"]
    first = next(iter(variants.values()))
    last, reference = len(first["ami"]), first["ami"][-1]
    early = min(3, last)
    lines = [f"# {title}", "",
             f"Scored on the {result['split']} split, AMI averaged as the paper ({result['ami_average_method']}); "
             f"seeds {', '.join(map(str, result['seeds']))}.", "",
             f"| variant | changes | AMI after {early} | AMI after {last} | range after {last} | vs first |",
             "|---|---|---|---|---|---|"]
    for name, row in variants.items():
        spread = row.get("final_ami")
        changes = ", ".join(f"{k}={v}" for k, v in row["changes"].items()) or "none"
        lines.append(
            f"| {name} | {changes} | {row['ami'][early - 1]:.3f} | {row['ami'][-1]:.3f} | "
            + (f"{spread['min']:.3f} to {spread['max']:.3f}" if spread else "one seed")
            + f" | {row['ami'][-1] - reference:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def ablation_figure(result: dict[str, Any]) -> Any:
    """uint8 (H, W, 3): each variant's median AMI per iteration after training and, beside it,
    its median validation AMI per epoch (how it grew with the updates), on shared axes."""
    from tagdata.render import side_by_side
    from tagmodels.training.plot import line_panel

    variants = result["variants"].items()
    per_iteration = line_panel("median AMI per iteration", "iteration",
                               [(name, list(range(1, len(row["ami"]) + 1)), row["ami"]) for name, row in variants])
    per_epoch = [(name, list(range(1, len(row["valid_ami_per_epoch"]) + 1)), row["valid_ami_per_epoch"])
                 for name, row in variants if row.get("valid_ami_per_epoch")]
    if not per_epoch:  # a study written before the per-epoch curves were kept
        return per_iteration
    return side_by_side(per_iteration, line_panel("median validation AMI per epoch", "epoch", per_epoch), gap=6)
