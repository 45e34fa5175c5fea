"""`tagtool gpu-check` (issue 16, part 2) run through on the CPU at a tiny scale: every step
passes and writes its JSON, and a failing step is recorded without stopping the rest."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tagtool_cli.main import tagtool

from tagmodels.gpu.steps import CASES, POPULATIONS
from tagmodels.training.host_sync import Violation

TINY = ("--device", "cpu", "--images", "20", "--speed-preset", "shapes-small", "--speed-compile", "off",
        "--seconds", "0.1")


def gpu_check(out, *args):
    return CliRunner().invoke(tagtool, ["gpu-check", "--out", str(out), *TINY, *args])


def test_gpu_check_on_cpu_passes_every_step_and_writes_json(tmp_path):
    result = gpu_check(tmp_path / "check")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "check" / "gpu-check.json").read_text())
    steps = {row["step"]: row for row in report["steps"]}
    assert report["ok"] and report["finished"] and all(row["ok"] for row in steps.values())
    assert steps["resume is exact"]["largest_difference"] == 0.0
    reads = steps["fit reads the device once per epoch"]
    assert reads["host_reads_2_steps"] == reads["host_reads_12_steps"] > 0  # validation reads it, once an epoch
    violations = steps["training steps never wait for the device"]["violations"]
    assert len(violations) == len(CASES) * len(POPULATIONS) and not any(violations.values())
    assert sorted(p.name for p in (tmp_path / "check").glob("*.json")) == [
        "evaluate.json", "gpu-check.json", "speed-shapes-small.json"]
    assert len(json.loads((tmp_path / "check" / "evaluate.json").read_text())["iterations"]) == 5
    speed = json.loads((tmp_path / "check" / "speed-shapes-small.json").read_text())
    assert speed["settings"][0]["samples_per_second"] > 0 and report["device"].startswith("cpu")


def test_gpu_check_records_a_failing_step_and_runs_the_rest(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr("tagtool_cli.gpu_commands._tagtool", lambda *args: ran.append(args[0]))
    monkeypatch.setattr("tagtool_cli.gpu_commands._same_parameters", lambda a, b: {"ok": True})
    monkeypatch.setattr("tagmodels.gpu.steps.fit_host_reads", lambda device, steps, folder: 1)
    monkeypatch.setattr("tagmodels.gpu.steps.check_steps", lambda device, precision: {
        "tagger-binary-batch": [Violation("reads a value on the host", "aten._local_scalar_dense", "x.py:1")]
    })
    result = gpu_check(tmp_path / "check")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: gpu-check: 1 step(s) failed")
    report = json.loads((tmp_path / "check" / "gpu-check.json").read_text())
    assert report["failed"] == ["training steps never wait for the device"] and not report["ok"]
    assert ran[-1] == "speed-train" and report["steps"][-1]["ok"]


@pytest.mark.parametrize("args, message", [(("--images", "3"), "--images must be at least 10"),
                                           (("--seconds", "0"), "--seconds must be positive")])
def test_gpu_check_refuses_bad_options_in_one_line(tmp_path, args, message):
    result = gpu_check(tmp_path / "check", *args)
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "check").exists()
