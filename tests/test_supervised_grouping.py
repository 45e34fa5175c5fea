"""`tagtool supervised-grouping`: the supervised phase grown on a trained Tagger run, its
grouping scored before and after, resumable (and extendable), the source run left untouched."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

invoke = CliRunner().invoke


def trained_run(data, out) -> None:
    result = invoke(tagtool, ["train", "--data", str(data), "--out", str(out), "--preset", "texture-small",
                              "--groups", "2", "--epochs", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output


def phase_args(run, out, json_out, *extra: str) -> list[str]:
    return ["supervised-grouping", str(run), "--out", str(out), "--json", str(json_out), "--epochs", "2",
            "--fresh-widths", "8,4", "--iterations", "2", "--eval-iterations", "3", "--device", "cpu", "--quiet",
            *extra]


def test_phase_scores_before_and_after_trains_the_tagger_and_resumes(texture_file, tmp_path):
    run, phase, record_path = tmp_path / "run", tmp_path / "phase", tmp_path / "phase.json"
    trained_run(texture_file, run)
    source_bytes = (run / "checkpoint.pt").read_bytes()
    result = invoke(tagtool, phase_args(run, phase, record_path))
    assert result.exit_code == 0, result.output
    assert "before" in result.output and "after the supervised phase" in result.output
    record = json.loads(record_path.read_text())
    assert [row["iteration"] for row in record["before"]["iterations"]] == [1, 2, 3]
    assert [row["iteration"] for row in record["after"]["iterations"]] == [1, 2, 3]
    assert 0.0 <= record["after"]["classification_error"] <= 100.0
    # The top's spread over images: the 200-unit softmax before, the 11-unit class head after.
    assert 0.0 <= record["before"]["top_spread"] < 1.0 and 0.0 <= record["after"]["top_spread"] < 1.0
    assert record["before"]["top_spread"] != record["after"]["top_spread"]
    assert [row["epoch"] for row in record["per_epoch"]] == [1, 2]
    assert all({"valid_error", "valid_ami", "valid_cost"} <= set(row) for row in record["per_epoch"])
    # Per epoch the phase records the grouping figures an unsupervised run records (one helper).
    logged = [json.loads(line) for line in (phase / "metrics.jsonl").read_text().splitlines()]
    unsupervised = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    grouping_keys = {key for key in unsupervised if key.startswith("valid_")}
    assert all(grouping_keys <= set(row) for row in logged)
    assert all(len(row["valid_ami_iterations"]) == 2 and row["valid_ami_iterations"][-1] == row["valid_ami"]
               for row in logged)
    assert all(len(row["valid_layer_rms_owner"]) == len(unsupervised["valid_layer_rms_owner"]) > 0 for row in logged)
    assert record["phase"]["groups"] == 2 and Path(record["source_run"]).resolve() == run.resolve()
    # The whole system trains end to end (Section 3.3): the Tagger's own weights move, the source run's do not.
    assert (run / "checkpoint.pt").read_bytes() == source_bytes
    source = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    grown = torch.load(phase / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    shared = [name for name in source if "tagger." + name in grown]
    assert shared and any(not torch.equal(source[name], grown["tagger." + name]) for name in shared)
    # The same command again resumes the finished phase: no epoch is trained twice.
    again = invoke(tagtool, phase_args(run, phase, record_path))
    assert again.exit_code == 0, again.output
    assert json.loads(record_path.read_text())["training_seconds"] == record["training_seconds"]
    # More epochs continue it; fewer than it has are refused.
    longer = invoke(tagtool, phase_args(run, phase, record_path, "--epochs", "3"))
    assert longer.exit_code == 0, longer.output
    assert [row["epoch"] for row in json.loads(record_path.read_text())["per_epoch"]] == [1, 2, 3]
    shorter = invoke(tagtool, phase_args(run, phase, tmp_path / "short.json", "--epochs", "1"))
    assert shorter.exit_code != 0 and "already trained 3 epochs" in shorter.output


def test_another_phase_in_the_same_directory_and_shapes_data_are_refused(texture_file, shapes_file, tmp_path):
    run, phase = tmp_path / "run", tmp_path / "phase"
    trained_run(texture_file, run)
    assert invoke(tagtool, phase_args(run, phase, tmp_path / "a.json", "--epochs", "1")).exit_code == 0
    other = invoke(tagtool, phase_args(run, phase, tmp_path / "b.json", "--lr", "0.01"))
    assert other.exit_code != 0 and "holds another supervised phase" in other.output
    assert not (tmp_path / "b.json").exists()
    shapes_run = tmp_path / "shapes-run"
    result = invoke(tagtool, ["train", "--data", str(shapes_file), "--out", str(shapes_run), "--preset", "demo",
                              "--epochs", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    refused = invoke(tagtool, phase_args(shapes_run, tmp_path / "shapes-phase", tmp_path / "c.json"))
    assert refused.exit_code != 0 and "classifies digits" in refused.output
    assert not (tmp_path / "shapes-phase").exists()
