"""The training steps of every model, run under :class:`DeviceTrap` on one device.

Each case is one objective the training loop trains (Tagger's grouping objective, binary and
continuous, BatchNorm and LayerNorm, and with the 2016 release's options; the Table 2
classification objective of FC MLP, FC Ladder, ConvNet and the Tagger classifier, with every
label and with 1,000 of them), at a tiny width, stepped through
:func:`tagmodels.training.step.train_epoch` exactly as ``fit`` steps it. On CPU alone the
device is ``meta`` (the test suite's check); on a GPU it is the GPU, where ``tagtool
gpu-check`` adds CUDA's own sync detection. :func:`fit_host_reads` counts the host reads of a
whole ``fit`` (validation and checkpoints included), which must not grow with the steps of
an epoch.
"""

from __future__ import annotations

import contextlib
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from tagmodels import randomness, zoo
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.classification import ClassificationObjective
from tagmodels.training.data import SplitTensors
from tagmodels.training.grouping import GroupingObjective
from tagmodels.training.host_sync import DeviceTrap, Violation, project_line
from tagmodels.training.loop import Schedule, adam, fit
from tagmodels.training.step import Objective, PopulationCost, train_epoch
from tagmodels.training.precision import autocast
from tagmodels.training.runs import RunDir

SIDE = 12  # 12 x 12 images: the ConvNet's pools and valid convolution leave 1 x 1
N = SIDE * SIDE
EXAMPLES, BATCH = 8, 4  # two steps per epoch
LR = 1e-3
POPULATIONS = (1, 2)  # the single-run step and the batched one


@dataclass
class StepCase:
    """A named objective to build on a device."""

    name: str
    build: Callable[[torch.device], Objective]


def _split(kind: str, device: torch.device, digits: int = 1) -> SplitTensors:
    """Random images, segmentations and labels, created on ``device``."""
    images = torch.rand(EXAMPLES, 1, SIDE, SIDE, device=device)
    if kind == "shapes":
        images = (images > 0.7).float()
    return SplitTensors(
        kind,
        images,
        torch.randint(0, 3, (EXAMPLES, N), dtype=torch.uint8, device=device),
        torch.randint(0, 10, (EXAMPLES, digits), dtype=torch.uint8, device=device),
    )


# The 2016 release's details (docs/release-options.md), all switched on in one case per input kind.
RELEASE_OPTIONS = {
    "binary": {"z_input": "logit", "norm_epsilon": 1e-10, "tag_norm": "batch"},
    "continuous": {"variance_map": "exp-asinh", "likelihood_variance": "v-squared", "m_floor": 1e-5,
                   "norm_epsilon": 1e-10, "tag_norm": "batch", "initial_variance": 2.414},
}


def _tagger(kind: str, norm: str, device: torch.device, **options: object) -> Tagger:
    config = TaggerConfig(n_inputs=N, input_kind=kind, widths=(10, 8, 6), norm=norm,
                          **options)  # type: ignore[arg-type]
    return Tagger(config).to(device)


def _grouping(kind: str, norm: str, release: bool = False) -> StepCase:
    dataset = "shapes" if kind == "binary" else "texture-mnist"
    options = RELEASE_OPTIONS[kind] if release else {}

    def build(device: torch.device) -> Objective:
        split = _split(dataset, device)
        model = _tagger(kind, norm, device, **options)
        return GroupingObjective(model, split, split, groups=3, iterations=2, batch_size=BATCH)

    return StepCase(f"tagger-{kind}-{norm}{'-release-options' if release else ''}", build)


def _classifier(method: str, device: torch.device, release: bool) -> torch.nn.Module:
    if method == "fc-mlp":
        return zoo.create(method, n_inputs=N, widths=(10, 8))
    if method == "fc-ladder":
        return zoo.create(method, n_inputs=N, widths=(10, 8), denoising_weights=(1.0, 1.0, 1.0, 1.0),
                          normalise_reconstruction=release)  # Rasmus et al.'s Algorithm 1
    if method == "convnet":
        return zoo.create(method, image_size=(SIDE, SIDE), channels=(4, 6))
    return TaggerClassifier(_tagger("continuous", "batch", device), fresh_widths=(6, 5), groups=3, iterations=2)


def _classification(method: str, labelled: bool, release: bool = False) -> StepCase:
    def build(device: torch.device) -> Objective:
        split = _split("texture-mnist", device, digits=2)
        subset = torch.arange(0, EXAMPLES, 2) if labelled else None  # host indices, as labelled_subset gives
        model = _classifier(method, device, release).to(device)
        return ClassificationObjective(model, split, subset, split, BATCH)

    labels = "1000-labels" if labelled else "all-labels"
    return StepCase(f"{method}-{labels}{'-release-options' if release else ''}", build)


CASES: list[StepCase] = [
    *(_grouping(kind, norm) for kind in ("binary", "continuous") for norm in ("batch", "layer")),
    *(_grouping(kind, "layer", release=True) for kind in ("binary", "continuous")),
    *(_classification(method, labelled) for method in ("fc-mlp", "fc-ladder", "convnet", "tagger")
      for labelled in (False, True)),
    _classification("fc-ladder", labelled=True, release=True),
]


def _optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The loop's fused Adam; on meta, which fused Adam refuses, torch's multi-tensor Adam."""
    if device.type == "meta":
        return torch.optim.Adam(model.parameters(), lr=LR, foreach=True)
    return adam(model, LR)


@contextlib.contextmanager
def _cuda_sync_debug(device: torch.device, mode: str) -> Iterator[list[warnings.WarningMessage]]:
    """On CUDA, torch's own detector beside the trap: every call that synchronises raises
    (``mode`` "error") or warns ("warn"; the warnings are collected in the list yielded)."""
    if device.type != "cuda":
        yield []
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(mode)
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode("default")


def _failure(error: Exception) -> Violation:
    """An exception as a violation, placed at the innermost line of this project that raised it."""
    message = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    return Violation("fails on the device", message, project_line(traceback.extract_tb(error.__traceback__)))


def check_case(case: StepCase, device: torch.device, precision: str = "fp32", members: int = 1) -> list[Violation]:
    """The violations of one epoch (two steps) of ``case``'s training steps on ``device``,
    for a population of ``members`` (one: the single-run path; more: the batched one).

    The epoch's index batches are moved to the device before the trap, as ``fit`` moves them
    once per epoch; everything ``train_epoch`` then does is watched.
    """
    torch.manual_seed(0)
    orders = [torch.Generator().manual_seed(seed) for seed in range(members)]
    cast = contextlib.nullcontext() if device.type == "meta" else autocast(precision, device)
    trap = DeviceTrap(device)
    try:
        objectives = [case.build(device) for _ in range(members)]
        optimizers = [_optimizer(objective.model, device) for objective in objectives]
        rows = getattr(objectives[0], "n_train", EXAMPLES)  # a label-only classifier steps through its labelled rows
        batches = [torch.randperm(rows, generator=order).to(device).split(BATCH) for order in orders]
        cost = PopulationCost(objectives, [randomness.generator(device, seed) for seed in range(members)])
        with trap, _cuda_sync_debug(device, "error"):
            train_epoch(cost, optimizers, cast, batches, orders)
    except Exception as error:  # a device bug often shows as an exception (meta: no data to read)
        trap.violations.append(_failure(error))
    return trap.violations


def check_steps(device: torch.device, precision: str = "fp32") -> dict[str, list[Violation]]:
    """Every case's violations on ``device`` (empty lists: clean), as a single run and as a
    population of two."""
    return {
        f"{case.name}{'' if members == 1 else f' x{members}'}": check_case(case, device, precision, members)
        for case in CASES for members in POPULATIONS
    }


class _Squares:
    """A least-squares objective of ``n`` rows on ``device``; its validation reads the device."""

    def __init__(self, n: int, device: torch.device) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1).to(device)
        self.x = torch.randn(n, 3, device=device)

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor]:
        return (self.x[batch],)

    def cost(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x).pow(2).mean()

    def validate(self) -> dict[str, float]:
        return {"valid_cost": self.cost(self.model, self.x[:2]).item()}


def fit_host_reads(device: torch.device, steps: int, folder: Path) -> int:
    """Host reads over a whole 2-epoch ``fit`` of ``steps`` steps per epoch, in a new run
    directory under ``folder`` (the trap's violations, and on CUDA every synchronising call):
    a loop that reads the device once per epoch gives the same count for any number of steps."""
    run = RunDir(folder / f"fit-{steps}-steps")
    run.create({}, overwrite=True)
    with DeviceTrap(device) as trap, _cuda_sync_debug(device, "warn") as caught:
        fit(_Squares(2 * steps, device), 2 * steps, Schedule(epochs=2, lr=0.01, batch_size=2, seed=0), run,
            progress=False)
    return len(trap.violations) + sum("synchroniz" in str(warning.message) for warning in caught)
