"""report.md and report.json of ``tagtool reproduce``: where and how long it ran, the measured
samples/s per model, and what became of every planned run (done before, ran now, skipped
by the budget, or left unfinished: started, then stopped, so it resumes when run again)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from tagdata.atomic import atomic_write
from tagmodels.experiments.reproduce_plan import PlannedRun
from tagmodels.training.runs import provenance, write_json


def write_report(out: Path, scale: str, device: torch.device, budget: float, speeds: dict[str, float],
                 runs: list[PlannedRun], outcomes: dict[str, str], tables: list[str], wall_seconds: float,
                 plan_only: bool) -> dict[str, Any]:
    """Write both files; returns the JSON's content."""
    states = {run.name: outcomes.get(run.name, "planned only" if plan_only else "not started") for run in runs}
    report = {
        "scale": scale,
        "budget_seconds": budget,
        "wall_seconds": round(wall_seconds, 1),
        "samples_per_second": {key: round(value, 1) for key, value in speeds.items()},
        "counts": dict(Counter(states.values())),
        "runs": [{"table": run.table, "name": run.name, "seed": run.seed,
                  "estimated_seconds": round(run.estimated_seconds, 2), "state": states[run.name]} for run in runs],
        "tables": tables,
        **provenance(device),
    }
    write_json(out / "report.json", report)
    text = render_report(report)
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(text))
    return report


def render_report(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    counts = ", ".join(f"{n} {state}" for state, n in report["counts"].items())
    lines = [
        f"# tagtool reproduce, {report['scale']} scale", "",
        f"- device: {report['device']} ({report['threads']} threads), torch {report['torch_version']}",
        f"- commit: {report['commit']}; command: `{report['command']}`",
        f"- wall time {report['wall_seconds']:.0f} s of a budget of {report['budget_seconds']:.0f} s",
        f"- runs: {counts}",
        f"- tables: {', '.join(report['tables']) or 'none yet'}", "",
        "## Training speed (samples/s, measured by the speed probe)", "",
        "| model | samples/s |", "|---|---|",
        *[f"| {key} | {value:,.0f} |" for key, value in report["samples_per_second"].items()],
        "", "## Runs, in the order planned", "",
        "| table | run | estimated | state |", "|---|---|---|---|",
        *[f"| {run['table']} | {run['name']} | {run['estimated_seconds']:.1f} s | {run['state']} |"
          for run in report["runs"]],
    ]
    return "\n".join(lines) + "\n"
