"""table.md: a benchmark directory's results in the layout of the paper's Table 2.

Rows are dataset x method, columns the two label budgets; each cell is the mean +- sample
standard deviation of the test error over the seeds present, with the number of runs, and
the paper's figure stands beside it. Results with permuted pixels get their own columns
beside the ordinary ones. Any result.json under runs/ counts, so a user's own model appears
as an extra row when its run directory holds a result.json of the same form (see
docs/benchmark.md).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from tagdata.atomic import atomic_write
from tagdata.errors import UserError
from tagmodels.benchmark.settings import BUDGETS, DATASETS, METHODS, Scale
from tagmodels.paper import TABLE_2
from tagmodels.training.runs import read_json

TABLE = "table.md"
DATASET_TITLES = {
    "texture-mnist1": "TextureMNIST1 (top-1, chance 90 %)",
    "texture-mnist2": "TextureMNIST2 (top-2, chance 80 %)",
}
METHOD_TITLES = {"fc-mlp": "FC MLP", "fc-ladder": "FC Ladder", "tagger": "FC Tagger", "convnet": "ConvNet"}


RESULT_FIELDS = {"dataset": str, "method": str, "labels": str, "test_error": (int, float)}


def read_result(path: Path) -> dict[str, Any]:
    """A cell's result.json, refused in one line when it lacks what the table reads."""
    result = read_json(path)
    if not isinstance(result, dict) or not all(
        isinstance(result.get(name), kind) and not isinstance(result.get(name), bool)
        for name, kind in RESULT_FIELDS.items()
    ):
        raise UserError(f"{path} is not a benchmark result (it needs {', '.join(RESULT_FIELDS)}); "
                        "delete it to run the cell again")
    return result


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Every runs/*/result.json of a benchmark directory, in name order."""
    return [read_result(path) for path in sorted(Path(directory).glob("runs/*/result.json"))]


def summary(errors: list[float]) -> str:
    """'mean +- sample std (n=N)'; a single run has no spread to show."""
    if not errors:
        return "–"
    mean = statistics.fmean(errors)
    if len(errors) == 1:
        return f"{mean:.1f} (n=1)"
    return f"{mean:.1f} ± {statistics.stdev(errors):.1f} (n={len(errors)})"


def _ordered(present: set[str], known: tuple[str, ...]) -> list[str]:
    """Known names in the paper's order, then any others (users' own) alphabetically."""
    return [name for name in known if name in present] + sorted(present - set(known))


def render_table(results: list[dict[str, Any]], scale: Scale | None = None) -> str:
    """The Markdown text of table.md for ``results`` (result.json contents)."""
    errors: dict[tuple[str, str, str, bool], list[float]] = defaultdict(list)
    for result in results:
        key = (result["dataset"], result["method"], result["labels"], bool(result.get("permuted", False)))
        errors[key].append(float(result["test_error"]))
    orders = [False, True] if any(key[3] for key in errors) else [False]
    train_sizes = {r["train_examples"] for r in results if r.get("labels") == "50000" and "train_examples" in r}
    all_labels = "50k labels" if train_sizes <= {50000} else f"all labels ({', '.join(f'{n:,}' for n in sorted(train_sizes))})"

    header = ["Dataset", "Method"]
    for budget in BUDGETS:
        name = all_labels if budget == "50000" else "1k labels"
        header += [name + (", permuted pixels" if permuted else "") for permuted in orders]
        header.append(f"paper, {'50k' if budget == '50000' else '1k'}")
    lines = [
        "# Test error (%) in the layout of Table 2 (Greff et al. 2016)",
        "",
        *_preamble(results, scale),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    datasets = _ordered({key[0] for key in errors}, DATASETS)
    for dataset in datasets:
        methods = _ordered({key[1] for key in errors if key[0] == dataset}, METHODS)
        for i, method in enumerate(methods):
            row = [DATASET_TITLES.get(dataset, dataset) if i == 0 else "", METHOD_TITLES.get(method, method)]
            for budget in BUDGETS:
                row += [summary(errors.get((dataset, method, budget, permuted), [])) for permuted in orders]
                paper = TABLE_2.get((dataset, method), {}).get(budget)
                row.append(f"{paper[0]} ± {paper[1]} (n=5)" if paper else "–")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _preamble(results: list[dict[str, Any]], scale: Scale | None) -> list[str]:
    """What the figures are and where they come from."""
    lines = ["Each cell: mean ± sample standard deviation of the test error over seeds (n runs); "
             "clean test input; top-1 error on TextureMNIST1, top-2 on TextureMNIST2. "
             "The paper's columns are its Table 2 (5 runs)."]
    if scale is not None:
        lines += ["", f"**Scale: {scale.name}** — {scale.note}."]
        if scale.choices.describe():
            lines += ["", f"**Choices** (tagmodels/benchmark/settings.py): {scale.choices.describe()}."]
    devices = sorted({str(r.get("device")) for r in results})
    commits = sorted({str(r.get("commit")) for r in results})
    hours = sum(float(r.get("train_seconds", 0)) for r in results) / 3600
    if results:
        lines += ["", f"Runs: {len(results)}; devices: {', '.join(devices)}; commits: {', '.join(commits)}; "
                  f"training time {hours:.2f} h (supervised phases)."]
    return lines


def write_table(directory: Path, scale: Scale | None = None) -> Path:
    """Render DIR/table.md from DIR/runs/*/result.json (atomically)."""
    directory = Path(directory)
    text = render_table(load_results(directory), scale)
    path = directory / TABLE
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path
