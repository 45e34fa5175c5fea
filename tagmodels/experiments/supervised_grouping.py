"""Does the class cost make a group take the digit? The supervised phase of Section 3.3 grown
on a trained unsupervised Tagger run, with its grouping scored before and after every epoch.

The paper reports no grouping figure for TextureMNIST; the texture groupings it draws (Fig. 5)
are of the Tagger that went through the supervised phase (Section 3.3), and so is the 2016
release's published TextureMNIST model. An unsupervised texture Tagger of ours splits the
image by position, not by texture (docs/textures.md). This experiment measures what the class
cost adds: the same Tagger, the same data, with labels. The per-group "no class" head rewards
a group that holds only background, which the denoising cost alone does not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from tagdata.errors import UserError
from tagdata.provenance import portable_path
from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.evaluation import evaluate_grouping, seeded
from tagmodels.tagger.model import Tagger
from tagmodels.training.classification import ClassificationObjective, classification_error
from tagmodels.training.data import SplitTensors, load_split
from tagmodels.training.grouping import VALIDATION_SEED, grouping_metrics, load_tagger
from tagmodels.training.loop import Schedule, fit, training_seconds
from tagmodels.training.runs import RunDir, provenance


class SupervisedGrouping(ClassificationObjective):
    """The supervised phase's cost; validation adds the grouping AMI of the growing Tagger."""

    def __init__(self, model: TaggerClassifier, train: SplitTensors, valid: SplitTensors, batch_size: int) -> None:
        super().__init__(model, train, None, valid, batch_size)

    def validate(self) -> dict[str, Any]:
        model = self.model
        assert isinstance(model, TaggerClassifier)
        grouping = grouping_metrics(model.tagger, self.valid, model.groups, model.iterations, self.batch_size)
        return {**super().validate(), **grouping}


@torch.no_grad()
def top_spread(tagger: Tagger, x: torch.Tensor, groups: int, iterations: int, batch_size: int) -> float:
    """How much the Ladder's top (its softmax, last iteration) varies between images: the std
    over images of each unit, averaged over units and groups. Near 0, the top says nothing
    about the image, and a classifier grown on it starts from no class evidence."""
    was_training = tagger.training
    tagger.eval()
    with seeded(VALIDATION_SEED):
        tops = torch.cat([torch.softmax(tagger(x[start : start + batch_size], groups, iterations, corrupt=False)
                                        .top_logits.float(), dim=-1) for start in range(0, len(x), batch_size)])
    tagger.train(was_training)
    return float(tops.std(dim=0).mean())


def _fixed(identity: dict[str, Any]) -> dict[str, Any]:
    """What a resumed phase must share with its run directory: everything but its epochs."""
    phase = identity.get("phase")
    return {**identity, "phase": {k: v for k, v in phase.items() if k != "epochs"} if isinstance(phase, dict) else phase}


def supervised_grouping(
    run_dir: str, out: str, device: torch.device, epochs: int, lr: float, fresh_widths: Sequence[int],
    classification_weight: float, noise: float, iterations: int, eval_iterations: int = 5,
    valid_examples: int = 1000, seed: int = 0, precision: str = "fp32", progress: bool = True,
) -> dict[str, Any]:
    """Grow the fresh layers and the per-group head on ``run_dir``'s Tagger, train the supervised
    phase with every training label into ``out`` (resumed, for as many epochs or more, when it
    holds this phase), and return the grouping (per iteration) and error on the validation
    split before and after."""
    source = RunDir(run_dir)
    loaded = load_tagger(source, device)
    data_path = loaded.config["data"]
    if not Path(data_path).is_file():
        raise UserError(f"data file {data_path} of run {run_dir} does not exist")
    batch_size = loaded.config["training"]["batch_size"]
    groups = loaded.config["training"]["groups"]
    train = load_split(data_path, "train", device)
    valid = load_split(data_path, "valid", device, valid_examples)
    if train.kind != "texture-mnist":
        raise UserError(f"{data_path} holds {train.kind} data: the supervised phase classifies digits (TextureMNIST)")
    identity = {
        "model": "tagger-supervised-grouping", "source_run": portable_path(run_dir), "data": portable_path(data_path),
        "phase": {"epochs": epochs, "lr": lr, "fresh_widths": list(fresh_widths), "noise": noise, "groups": groups,
                  "classification_weight": classification_weight, "iterations": iterations,
                  "batch_size": batch_size, "seed": seed, "precision": precision},
    }
    run = RunDir(out)
    if run.config_path.exists():  # resume it, with as many epochs or more
        held = run.config()
        if _fixed({key: held.get(key) for key in identity}) != _fixed(identity):
            raise UserError(f"{out} holds another supervised phase; delete it or give another --out")
        done = len(run.history())
        if epochs < done:
            raise UserError(f"--epochs {epochs}: {out} has already trained {done} epochs; give at least {done}")
        opened = run.resumed({**held, "phase": identity["phase"]})
    else:
        opened = run.started({**identity, "provenance": provenance(device, seed)})
    with opened:  # a phase that fails before its first epoch leaves no run (or config change) behind
        # The unsupervised Tagger's own grouping, scored before the fresh layers change its decoder.
        before = evaluate_grouping(loaded.model, valid.x, valid.segmentation, groups, eval_iterations, batch_size)
        spread = top_spread(loaded.model, valid.x, groups, eval_iterations, batch_size)
        torch.manual_seed(seed)
        model = TaggerClassifier(loaded.model, fresh_widths, groups, iterations, noise, classification_weight).to(device)
        started = time.perf_counter()
        history = fit(SupervisedGrouping(model, train, valid, batch_size), len(train),
                      Schedule(epochs, lr, batch_size, seed), run, resume=True, progress=progress, precision=precision)
    after = evaluate_grouping(model.tagger, valid.x, valid.segmentation, groups, eval_iterations, batch_size)
    return {
        **identity,
        "split": "valid", "examples": len(valid), "ami_average_method": PAPER_AMI_AVERAGE,
        "before": {"iterations": before, "top_spread": spread},
        "after": {"iterations": after, "top_spread": top_spread(model.tagger, valid.x, groups, eval_iterations, batch_size),
                  "classification_error": classification_error(model, valid, batch_size)},
        "per_epoch": [{key: row[key] for key in ("epoch", "valid_error", "valid_ami", "valid_cost")} for row in history],
        "training_seconds": training_seconds(history), "wall_seconds": round(time.perf_counter() - started, 3),
        **provenance(device, seed),
    }
