"""A learning check that tells a working Tagger from a broken one: full TAG against ablations.

Three runs on the same data, seed and preset: the full model, one fed zeros for delta z, one
fed zeros for L(m). Each is evaluated per iteration (AMI on the test split); inference
that uses the paper's two error signals (Section 2.1) should group clearly better than
either ablation, and improve over iterations. Every run is resumable, so the check can be
stopped and continued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from tagdata.provenance import portable_path
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.training.data import load_split
from tagmodels.training.grouping import new_run_config, train_tagger
from tagmodels.training.loop import training_seconds
from tagmodels.training.runs import RunDir, provenance

VARIANTS: dict[str, tuple[str, ...]] = {"full": (), "no-delta-z": ("delta_z",), "no-likelihood": ("likelihood",)}


def run_ablation(
    data: str, out: Path, preset: str, seed: int, device: torch.device, iterations: int,
    precision: str = "fp32", progress: bool = False, log: Callable[[str], None] = print,
    adapt_threads: bool = False, **overrides: Any,
) -> dict[str, Any]:
    """Train (or resume) the three variants under ``out`` and score each per iteration."""
    out.mkdir(parents=True, exist_ok=True)
    test = load_split(data, "test", device)
    result: dict[str, Any] = {"data": portable_path(data), "preset": preset, "overrides": overrides,
                              "precision": precision, "ami_average_method": PAPER_AMI_AVERAGE, "variants": {}}
    for name, zeroed in VARIANTS.items():
        run = RunDir(out / name)
        if run.config_path.exists():
            config = run.config()
        else:
            config = new_run_config(preset, data, seed, device, precision, **overrides)
            config["tagger"]["zeroed_inputs"] = list(zeroed)
            run.create(config)
        model, history = train_tagger(run, config, device, resume=True, progress=progress, adapt_threads=adapt_threads)
        training = config["training"]
        rows = evaluate_grouping(model, test.x, test.segmentation, training["groups"], iterations, training["batch_size"])
        result["variants"][name] = {
            "zeroed_inputs": list(zeroed),
            "epochs": len(history),
            "train_seconds": training_seconds(history),
            "ami": [round(row["ami"], 4) for row in rows],
            "denoising_cost": [round(row["denoising_cost"], 5) for row in rows],
        }
        log(f"{name:>14}: AMI per iteration {' '.join(f'{a:.3f}' for a in result['variants'][name]['ami'])}")
    return {**result, **provenance(device, seed)}
