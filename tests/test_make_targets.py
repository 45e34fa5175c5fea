"""The Makefile's reproduction targets, run end to end on tiny data (the real ones take hours)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(target: str, *variables: str) -> subprocess.CompletedProcess[str]:
    """``make target`` with this interpreter's tagtool and no set-up step (STAMP empty)."""
    return subprocess.run(
        ["make", "-C", str(ROOT), target, f"BIN={Path(sys.executable).parent}", "STAMP=", "OMP_NUM_THREADS=1",
         *variables],
        capture_output=True, text=True, timeout=600,
    )


def test_table1_target_trains_both_norms_then_tabulates_and_resumes_instead_of_retraining(tmp_path):
    out = tmp_path / "table1"
    variables = (f"TABLE1={out}", "TABLE1_DATA=--train 60 --valid 20 --test 30 --single 0",
                 "TABLE1_OPTIONS=--epochs 1 --no-compile --threads 1 --quiet")
    first = make("table1", *variables)
    assert first.returncode == 0, first.stdout + first.stderr
    table = (out / "table1.md").read_text()
    assert "| Tagger | 5 |" in table and "| Tagger* | 5 |" in table  # both norms, 5 evaluation iterations
    evaluation = json.loads((out / "shapes-paper-layer.json").read_text())
    assert evaluation["training"]["norm"] == "layer" and evaluation["ami_average_method"] == "max"
    assert "shapes-4obj" in (out / "generalization.md").read_text()

    (out / "table1.md").unlink()
    second = make("table1", *variables)
    assert second.returncode == 0, second.stdout + second.stderr
    assert (out / "table1.md").exists()
    for norm in ("batch", "layer"):  # resumed, not trained again
        assert len((out / f"shapes-paper-{norm}" / "metrics.jsonl").read_text().splitlines()) == 1


def test_demo_target_trains_the_demo_preset_draws_and_scores(tmp_path):
    out = tmp_path / "demo"
    result = make("demo", f"DEMO={out}", "DEMO_DATA=--train 60 --valid 20 --test 30 --single 0",
                  "DEMO_LENGTH=--budget-minutes 0.01", "DEMO_OPTIONS=--threads 1 --quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((out / "run" / "config.json").read_text())
    assert config["preset"] == "demo" and config["budget"]["minutes"] == 0.01
    assert len((out / "run" / "metrics.jsonl").read_text().splitlines()) == config["training"]["epochs"] >= 1
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["training"]["budget"] == config["budget"]
    assert [row["iteration"] for row in evaluation["iterations"]] == [1, 2, 3, 4, 5]
    assert {"ami", "ari", "fg_ari", "msc"} <= set(evaluation["iterations"][-1])
    assert (out / "tagger.png").stat().st_size > 0
