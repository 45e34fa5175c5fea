"""Samples per second of a population of P Tagger runs trained as one (batched, and member by
member), against the same P runs trained one after another (a single run's speed: P runs back
to back take P times as long).

Both are timed on the same random data of the preset's input size with the loop's own step
(:func:`tagmodels.training.budget.step_seconds`), alternating between the two for ``rounds``
rounds so that a change in the machine's load hits both alike.
"""

from __future__ import annotations

from typing import Any

import torch

from tagmodels.tagger.model import Tagger
from tagmodels.tagger.presets import get_preset
from tagmodels.training.budget import step_seconds
from tagmodels.training.data import SplitTensors
from tagmodels.training.grouping import GroupingObjective, tagger_config
from tagmodels.training.step import batched_on


def _objectives(preset_name: str, members: int, device: torch.device) -> list[GroupingObjective]:
    preset = get_preset(preset_name)
    kind = "binary" if preset.dataset_kind == "shapes" else "continuous"
    side = 20 if kind == "binary" else 28
    images = torch.rand(4 * preset.batch_size, 1, side, side, device=device)
    if kind == "binary":
        images = (images < preset.data_mean).float()
    data = SplitTensors(preset.dataset_kind, images, torch.zeros(len(images), side * side, dtype=torch.uint8, device=device),
                        torch.zeros(len(images), 1, dtype=torch.uint8, device=device))
    objectives = []
    for seed in range(members):
        torch.manual_seed(seed)
        model = Tagger(tagger_config(preset, side * side, kind)).to(device)
        objectives.append(GroupingObjective(model, data, data, preset.groups, preset.iterations, preset.batch_size))
    return objectives


def measure_population_speed(
    preset_name: str, device: torch.device, members: int = 5, seconds: float = 5.0, precision: str = "fp32",
    rounds: int = 2,
) -> dict[str, Any]:
    """Training samples/s (all members together) of a population of ``members`` and of the same
    runs one at a time, best of ``rounds`` alternating measurements each."""
    objectives = _objectives(preset_name, members, device)
    batch_size = objectives[0].batch_size
    together, in_turn, alone = [], [], []
    for _ in range(rounds):
        together.append(members * batch_size / step_seconds(objectives, device, precision, seconds))
        in_turn.append(members * batch_size / step_seconds(objectives, device, precision, seconds, batched=False))
        alone.append(batch_size / step_seconds(objectives[:1], device, precision, seconds))
    return {
        "preset": preset_name,
        "members": members,
        "precision": precision,
        "batch_size": batch_size,
        "batched_on_this_device": batched_on(device),
        "population_samples_per_second": round(max(together), 2),
        "member_by_member_samples_per_second": round(max(in_turn), 2),
        "separate_samples_per_second": round(max(alone), 2),
        "speedup": round(max(together) / max(alone), 3),
        "member_by_member_speedup": round(max(in_turn) / max(alone), 3),
        "rounds": {"population": [round(v, 2) for v in together], "member_by_member": [round(v, 2) for v in in_turn],
                   "separate": [round(v, 2) for v in alone]},
    }
