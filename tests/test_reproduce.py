"""`tagtool reproduce --scale tiny`: the whole of Tables 1 and 2 planned, timed, run, tabulated
and reported on CPU in seconds; a budget too small skips honestly; a second command resumes
instead of retraining; bad options are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

from tagdata.errors import UserError
from tagmodels.experiments.speed_probe import probe_speeds
from tagmodels.experiments.reproduce_plan import (
    Estimator, fit_budget, get_reproduce_scale, parse_budget, plan_units, probe_key,
)

TABLE2_CELLS = 22  # 16 cells and 6 permuted ones per seed


def reproduce(out: Path, mnist: Path, *options: str):
    return CliRunner().invoke(tagtool, [
        "reproduce", "--scale", "tiny", "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out),
        "--mnist-dir", str(mnist), "--seeds-table1", "1", "--seeds-table2", "1", *options,
    ])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist_dir) -> tuple[Path, Path, str]:
    """One tiny reproduction run to its end (the folder, the MNIST files, its output)."""
    out = tmp_path_factory.mktemp("reproduce") / "out"
    result = reproduce(out, mnist_dir, "--budget", "10m")
    assert result.exit_code == 0, result.output
    return out, mnist_dir, result.output


def test_tiny_scale_runs_every_table_end_to_end_and_reports(finished):
    out, _, output = finished
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"ran": 2 + TABLE2_CELLS}, output
    assert report["tables"] == ["table1.md", "table2.md"]
    assert set(report["samples_per_second"]) >= {"table1-batch x1", "table1-layer x1", "tagger-unsupervised x1", "convnet-1000 x1"}
    assert report["device"].startswith("cpu") and report["commit"] is not None and "command" in report
    assert "/work/" not in (out / "report.json").read_text().replace(str(out), "")  # relative paths only
    table1 = (out / "table1.md").read_text()
    # The tiny scale's models are named by their widths, beside the paper's Tagger and Tagger*.
    assert "| Tagger (widths 32-16-8) | 5 |" in table1 and "| Tagger* (widths 32-16-8) | 5 |" in table1
    assert "0.97" in table1
    table2 = (out / "table2.md").read_text()
    assert "permuted pixels" in table2 and "4.0 ± 0.3 (n=5)" in table2
    evaluation = json.loads((out / "table1" / "evaluations" / "shapes-paper-layer_seed0.json").read_text())
    assert len(evaluation["iterations"]) == 5 and evaluation["training"]["norm"] == "layer"
    plan = json.loads((out / "plan.json").read_text())
    assert [run["table"] for run in plan["runs"][:2]] == ["table1", "table1"] and all(r["fits"] for r in plan["runs"])
    assert "Training speed" in (out / "report.md").read_text()


def test_a_second_command_resumes_instead_of_retraining(finished):
    out, mnist, _ = finished
    checkpoint = out / "table1" / "shapes-paper-batch_seed0" / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    result = reproduce(out, mnist, "--budget", "10m")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["counts"] == {"done before": 2 + TABLE2_CELLS}
    assert checkpoint.stat().st_mtime_ns == before


def test_status_shows_both_tables_runs(finished):
    out, _, _ = finished
    result = CliRunner().invoke(tagtool, ["status", str(out)])
    assert result.exit_code == 0, result.output
    assert "table1/shapes-paper-layer_seed0" in result.output and "table2/convnet_texture-mnist2_1000-permuted_seed0" in result.output
    assert f"{2 + TABLE2_CELLS} in all: {2 + TABLE2_CELLS} done" in result.output


def test_a_budget_too_small_plans_everything_and_skips_it_honestly(tmp_path, mnist_dir):
    out = tmp_path / "small"
    result = reproduce(out, mnist_dir, "--budget", "0.001s")
    assert result.exit_code == 0, result.output
    assert f"plan: 0 of {2 + TABLE2_CELLS} runs fit" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"skipped (budget)": 2 + TABLE2_CELLS} and report["tables"] == []
    assert not (out / "table1.md").exists()


def test_the_plan_puts_table1_and_one_seed_of_every_cell_first_and_fits_the_budget_in_order():
    units = plan_units(3, 2)
    assert [u.table for u in units[:2]] == ["table1", "table1"] and units[0].seeds == (0, 1, 2)
    assert all(u.seeds == (0,) for u in units[2:2 + TABLE2_CELLS]) and all(u.seeds == (1,) for u in units[2 + TABLE2_CELLS:])
    speeds = {probe_key(kind, 3): 1000.0 for kind in ("table1-batch", "table1-layer")}
    kinds = [f"{m}-{b}" for m in ("fc-mlp", "fc-ladder", "tagger", "convnet") for b in ("50000", "1000")]
    speeds |= {probe_key(kind, 1): 1000.0 for kind in ("tagger-unsupervised", *kinds)}
    estimator = Estimator(get_reproduce_scale("tiny"), 200, speeds)
    runs = fit_budget(units[:1], estimator, budget_seconds=0.45)  # each seed: 1 epoch x 200 / 1000 = 0.2 s
    assert [run.fits for run in runs] == [True, True, False]
    runs = fit_budget(units[:1], estimator, 0.45, done={units[0].run_name(0)})
    assert [run.fits for run in runs] == [True, True, True]


def test_the_probe_times_each_model_kind_at_the_population_sizes_its_units_train():
    units = plan_units(2, 3)  # Table 1: 2 seeds together; Table 2: seed 0, then seeds 1 and 2 together
    speeds = probe_speeds(get_reproduce_scale("tiny"), units, torch.device("cpu"), "fp32", 0.01, log=lambda line: None)
    kinds = [f"{m}-{b}" for m in ("fc-mlp", "fc-ladder", "tagger", "convnet") for b in ("50000", "1000")]
    expected = {"table1-batch x2", "table1-layer x2"} | {f"{kind} x{n}" for kind in ("tagger-unsupervised", *kinds) for n in (1, 2)}
    assert set(speeds) == expected and all(rate > 0 for rate in speeds.values())
    assert all(unit.probe() in speeds for unit in units)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1.5h", 5400), ("30", 30)])
def test_budgets_are_read_in_seconds_minutes_or_hours(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("options, message", [
    (["--budget", "abc"], "Error: --budget 'abc' is not a duration: write it as 90s, 10m or 2h"),
    (["--scale", "huge"], "Error: unknown scale 'huge'; choose one of paper, cpu, tiny"),
])
def test_bad_options_are_refused_in_one_line_and_leave_no_folder(tmp_path, options, message):
    out = tmp_path / "refused"
    result = CliRunner().invoke(tagtool, ["reproduce", "--out", str(out), "--device", "cpu", *options])
    assert result.exit_code != 0 and result.output.strip().splitlines() == [message]
    assert not out.exists()
    with pytest.raises(UserError):
        parse_budget("0m")


def test_a_stopped_run_is_reported_unfinished_then_resumed_from_its_checkpoint(finished, tmp_path):
    out, mnist, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cell = copy / "table2" / "runs" / "convnet_texture-mnist2_1000_seed0"
    (cell / "result.json").unlink()  # as if killed after its last checkpoint, before its result
    (copy / "table1" / "evaluations" / "shapes-paper-layer_seed0.json").unlink()
    stopped = reproduce(copy, mnist, "--budget", "0.001s")
    assert stopped.exit_code == 0, stopped.output
    states = {run["name"]: run["state"] for run in json.loads((copy / "report.json").read_text())["runs"]}
    assert states["convnet_texture-mnist2_1000_seed0"] == states["shapes-paper-layer_seed0"] == "unfinished (resumes)"
    resumed = reproduce(copy, mnist, "--budget", "10m")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((copy / "report.json").read_text())["counts"] == {"done before": TABLE2_CELLS, "ran": 2}
    assert json.loads((cell / "result.json").read_text())["resumed_at_epoch"] == 1  # not trained again
