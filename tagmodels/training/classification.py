"""One objective and one evaluation routine for every classifier of Table 2.

The objective hands :func:`tagmodels.training.loop.fit` the cost of a batch. With every label,
a batch is labelled. With 1,000 labels, models that learn from unlabelled data (FC Ladder,
Tagger) step through all training images as the unlabelled stream and get, per step, a
labelled batch of the same size drawn from the 1,000 with the loop's generator (so resumed
runs stay exact); the two are stacked, labelled rows first. Purely supervised models train
on the 1,000 labelled examples alone.

Evaluation runs on clean input, in eval mode, with a fixed seed for anything random (the
Tagger's initial m), and scores top-1 error with one digit and top-2 with two (Section 3.3),
in percent.
"""

from __future__ import annotations

import numpy as np
import torch

from tagmodels.baselines.classifiers import N_CLASSES, Classifier
from tagmodels.metrics import top1_error, top2_error
from tagmodels.tagger.evaluation import seeded
from tagmodels.training.data import SplitTensors, to_device_async

EVAL_SEED = 0


def example_errors(scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-example error: top-1 for labels (n, 1), top-2 for two-digit labels (n, 2)."""
    if labels.shape[1] == 1:
        return top1_error(scores, labels)
    if labels.shape[1] == 2:
        return top2_error(scores, labels)
    raise ValueError(f"labels must be (n, 1) or (n, 2), got {tuple(labels.shape)}")


@torch.no_grad()
def predict_all(model: Classifier, x: torch.Tensor, batch_size: int = 100, seed: int = EVAL_SEED) -> torch.Tensor:
    """Class probabilities (n, 10) of clean images, batch by batch, in eval mode."""
    was_training = model.training
    model.eval()
    with seeded(seed):
        scores = torch.cat([model.predict(x[start : start + batch_size]) for start in range(0, len(x), batch_size)])
    model.train(was_training)
    return scores


def classification_error(model: Classifier, data: SplitTensors, batch_size: int = 100, seed: int = EVAL_SEED) -> float:
    """Classification error in percent over ``data`` (Table 2's figure)."""
    errors = example_errors(predict_all(model, data.x, batch_size, seed), data.labels)
    return float(100.0 * errors.mean())


class ClassificationObjective:
    """Cost of a batch for :func:`fit`; validation = error on the validation examples."""

    def __init__(
        self,
        model: Classifier,
        train: SplitTensors,
        labelled: torch.Tensor | None,
        valid: SplitTensors,
        batch_size: int,
    ) -> None:
        self.model = model
        x = train.x
        # The target distributions (metrics.mixture_targets), built where the labels lie.
        targets = torch.nn.functional.one_hot(train.labels.long(), N_CLASSES).float().mean(dim=1)
        if labelled is not None and not model.uses_unlabelled:
            x, targets, labelled = x[labelled.to(x.device)], targets[labelled.to(x.device)], None
        self.x = x
        self.targets = targets
        self.labelled = None if labelled is None else labelled.cpu()
        self.valid = valid
        self.batch_size = batch_size

    @property
    def n_train(self) -> int:
        """Rows one epoch steps through: all images, or the labelled ones of a label-only model."""
        return len(self.x)

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.x.device
        if self.labelled is None:
            rows = batch.to(device)
            return self.x[rows], self.targets[rows]
        # Drawn on the host from the loop's generator (exact resumes); the copy does not wait.
        draw = torch.randint(len(self.labelled), (len(batch),), generator=generator)
        picked = to_device_async(self.labelled[draw], device)
        return torch.cat([self.x[picked], self.x[batch.to(device)]]), self.targets[picked]

    def cost(self, model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return model.cost(x, targets)

    def validate(self) -> dict[str, float]:
        return {"valid_error": classification_error(self.model, self.valid, self.batch_size)}
