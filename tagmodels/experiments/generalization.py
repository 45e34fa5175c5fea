"""How a trained Tagger generalises (paper, Section 3.2 and Fig. 4 A-C): the same model on
data with other numbers of objects, with other numbers of groups K than it was trained with.

Each cell is the test AMI (clean input, the paper's max normalisation) after the last
iteration; the per-iteration figures are kept in the JSON.
"""

from __future__ import annotations

from typing import Any

from tagmodels.metrics import PAPER_AMI_AVERAGE
from tagmodels.tagger.evaluation import grouping_per_iteration
from tagmodels.tagger.model import Tagger
from tagmodels.training.data import SplitTensors


def generalization_table(
    model: Tagger, datasets: dict[str, SplitTensors], groups: list[int], iterations: int,
    batch_size: int = 100, seed: int = 0,
) -> dict[str, Any]:
    """AMI per dataset and K: {"cells": [{"data", "groups", "ami_per_iteration", "ami"}, ...]}."""
    cells = []
    for name, data in datasets.items():
        for k in groups:
            rows = grouping_per_iteration(model, data.x, data.segmentation, k, iterations, batch_size, seed)
            ami = [round(row["ami"], 4) for row in rows]
            cells.append({"data": name, "examples": len(data), "groups": k, "ami_per_iteration": ami, "ami": ami[-1]})
    return {"iterations": iterations, "ami_average_method": PAPER_AMI_AVERAGE, "cells": cells}


def render(table: dict[str, Any], title: str) -> str:
    """Markdown: one row per dataset, one column per K."""
    groups = sorted({cell["groups"] for cell in table["cells"]})
    names = list(dict.fromkeys(cell["data"] for cell in table["cells"]))
    ami = {(cell["data"], cell["groups"]): cell["ami"] for cell in table["cells"]}
    lines = [
        f"# {title}", "",
        f"Test AMI ({table['ami_average_method']} normalisation) after {table['iterations']} iterations, "
        "by dataset (rows) and number of groups K (columns).", "",
        "| data | " + " | ".join(f"K = {k}" for k in groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    lines += [f"| {name} | " + " | ".join(f"{ami[(name, k)]:.3f}" for k in groups) + " |" for name in names]
    return "\n".join(lines) + "\n"
