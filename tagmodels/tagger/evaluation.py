"""Per-iteration grouping quality: AMI and ARI on clean input, denoising cost on corrupted input.

This is the layout of the paper's Table 1a, with the FG-ARI and mSC that object-centric work
reports beside it (see :mod:`tagmodels.metrics`); the AMI uses the paper's normalisation (max of
the two entropies, see :mod:`tagmodels.metrics`). The random initial m (and the corruption) are
drawn from a fixed seed so that evaluating the same run twice gives the same figures.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from tagdata.layout import UNSCORED
from tagmodels.metrics import PAPER_AMI_AVERAGE, SCORES, grouping_scores
from tagmodels.tagger.model import Tagger


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block on its own random stream, leaving the caller's RNG state untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


ORACLE_CONFIDENCE = 0.99  # m^0 of a pixel's true group in an oracle start; the rest share 0.01


def oracle_log_m0(segmentation: torch.Tensor, groups: int) -> torch.Tensor:
    """log m^0 (n, K, N) that hands the model the true grouping: layer l's pixels to group l
    (nearly one-hot), unscored pixels and layers beyond K uniform. A diagnostic, not training:
    does a trained model keep a correct grouping and explain the input better with it?"""
    n, pixels = segmentation.shape
    if groups == 1:
        return torch.zeros(n, 1, pixels, device=segmentation.device)
    layer = segmentation.long()
    true_group = torch.nn.functional.one_hot(layer.clamp(max=groups - 1), groups).permute(0, 2, 1)
    assigned = torch.where(true_group.bool(), ORACLE_CONFIDENCE, (1 - ORACLE_CONFIDENCE) / (groups - 1))
    m = torch.where((layer < groups).unsqueeze(1), assigned, torch.tensor(1.0 / groups))
    return m.float().log()


def _slice(log_m0: torch.Tensor | None, start: int, stop: int) -> torch.Tensor | None:
    return None if log_m0 is None else log_m0[start:stop]


@torch.no_grad()
def grouping_per_iteration(
    model: Tagger, x: torch.Tensor, segmentation: torch.Tensor, groups: int, iterations: int,
    batch_size: int = 100, seed: int = 0, average_method: str = PAPER_AMI_AVERAGE,
    log_m0: torch.Tensor | None = None, layer_rms: bool = False,
) -> list[dict[str, Any]]:
    """Mean AMI, ARI, FG-ARI and mSC after each iteration, on clean input (Section 3.1), from
    the random m^0 or from ``log_m0`` (n, K, N) when given; with ``layer_rms``, also how well
    the groups' z explain each true layer, from the same pass (:class:`LayerErrors`)."""
    scores: list[dict[str, list[np.ndarray]]] = [{name: [] for name in SCORES} for _ in range(iterations)]
    errors = LayerErrors(segmentation, iterations) if layer_rms else None
    with seeded(seed), _eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb, seg = x[start : start + batch_size], segmentation[start : start + batch_size]
            clean = model(xb, groups, iterations, corrupt=False, log_m0=_slice(log_m0, start, start + batch_size))
            for i, log_m in enumerate(clean.log_m):
                batch = grouping_scores(seg, log_m, average_method=average_method)
                for name in SCORES:
                    scores[i][name].append(batch[name])
                if errors is not None:
                    errors.add(i, xb, seg, clean.z[i], log_m)
    rows: list[dict[str, Any]] = [
        {"iteration": i + 1, **{name: float(np.nanmean(np.concatenate(parts))) for name, parts in scores[i].items()}}
        for i in range(iterations)
    ]
    if errors is not None:
        for row, rms in zip(rows, errors.rms()):
            row["layer_rms"] = rms
    return rows


class LayerErrors:
    """Per iteration and true layer l (a label of the segmentation, 0 = the background on
    TextureMNIST), on clean input, the rms error of z over l's scored pixels:

    - ``best_group``: of the one group whose z explains the whole layer best in each example,
      whatever m says: does some group model the object as a whole?
    - ``owner``: of the group m assigns each pixel to (argmax_k m_k): does the grouping's own
      reconstruction explain the layer, whichever groups share it?

    Why: AMI reads m only. A group that holds a digit's pixels while no z reconstructs its
    texture shows up as a large owner rms on the digit's layer; a layer split among groups that
    each explain only their own pixels, as a small owner rms beside a large best_group rms
    (docs/textures.md). None for a layer absent from every example.
    """

    READINGS = ("best_group", "owner")

    def __init__(self, segmentation: torch.Tensor, iterations: int) -> None:
        labelled = segmentation[segmentation != UNSCORED]
        self.layers = int(labelled.max()) + 1 if labelled.numel() else 0
        self.totals = torch.zeros(len(self.READINGS), iterations, self.layers, dtype=torch.float64)
        self.present = torch.zeros(iterations, self.layers, dtype=torch.float64)

    def add(self, i: int, x: torch.Tensor, segmentation: torch.Tensor, z: torch.Tensor, log_m: torch.Tensor) -> None:
        """Iteration i of one batch: x (B, N), its segmentation (B, N), z and log m (B, K, N)."""
        layers = self.layers
        onehot = torch.nn.functional.one_hot(segmentation.long().clamp(max=layers), layers + 1)[..., :layers]
        onehot = onehot.to(x.dtype)
        pixels = onehot.sum(dim=1)  # (B, L) pixels of each layer
        count = pixels.clamp(min=1)
        error = (z - x.unsqueeze(1)) ** 2  # (B, K, N)
        per_group = torch.einsum("bkn,bnl->bkl", error, onehot) / count.unsqueeze(1)
        owned = error.gather(1, log_m.argmax(dim=1, keepdim=True)).squeeze(1)  # (B, N)
        per_owner = torch.einsum("bn,bnl->bl", owned, onehot) / count
        self.totals[0, i] += per_group.min(dim=1).values.double().sum(dim=0).cpu()
        self.totals[1, i] += per_owner.double().sum(dim=0).cpu()
        self.present[i] += (pixels > 0).sum(dim=0).double().cpu()

    def rms(self) -> list[dict[str, list[float | None]]]:
        """Per iteration, each reading's rms per layer (the mean over examples of the squared error)."""
        return [
            {name: [float((self.totals[r, i, l] / self.present[i, l]).sqrt()) if self.present[i, l] > 0 else None
                    for l in range(self.layers)]
             for r, name in enumerate(self.READINGS)}
            for i in range(self.totals.shape[1])
        ]


@torch.no_grad()
def denoising_cost_per_iteration(
    model: Tagger, x: torch.Tensor, groups: int, iterations: int, batch_size: int = 100, seed: int = 0,
    log_m0: torch.Tensor | None = None,
) -> list[float]:
    """The training cost -log q_i(x) on corrupted input after each iteration, per example and
    element: batches are weighted by their size, so the figure does not depend on batch_size."""
    total = np.zeros(iterations)
    with seeded(seed), _eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            output = model(xb, groups, iterations, corrupt=True, log_m0=_slice(log_m0, start, start + batch_size))
            total += output.cost.double().cpu().numpy() * xb.shape[0]
    return [float(c / x.shape[0]) for c in total]


def evaluate_grouping(
    model: Tagger, x: torch.Tensor, segmentation: torch.Tensor, groups: int, iterations: int,
    batch_size: int = 100, seed: int = 0, cost_x: torch.Tensor | None = None,
    average_method: str = PAPER_AMI_AVERAGE, cost_segmentation: torch.Tensor | None = None, oracle: bool = False,
    layer_rms: bool = False,
) -> list[dict[str, Any]]:
    """Table 1a's rows: AMI and ARI (clean ``x``) and the denoising cost per iteration.

    The cost is measured on ``cost_x`` (with ``cost_segmentation``) when given (the paper: on
    the validation split), else on ``x``. ``oracle`` starts from the true grouping
    (:func:`oracle_log_m0`) in place of the random m^0. ``layer_rms``: as
    :func:`grouping_per_iteration`.
    """
    cost_x, cost_segmentation = (x, segmentation) if cost_x is None else (cost_x, cost_segmentation)
    start, cost_start = None, None
    if oracle:
        if cost_segmentation is None:
            raise ValueError("an oracle start needs the cost split's segmentation")
        start, cost_start = oracle_log_m0(segmentation, groups), oracle_log_m0(cost_segmentation, groups)
    rows = grouping_per_iteration(
        model, x, segmentation, groups, iterations, batch_size, seed, average_method, start, layer_rms
    )
    costs = denoising_cost_per_iteration(model, cost_x, groups, iterations, batch_size, seed, cost_start)
    return [{**row, "denoising_cost": cost} for row, cost in zip(rows, costs)]


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode for a block, restoring the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
