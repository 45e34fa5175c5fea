"""What a run records and reports (issue 9, items 3 and 5): divergence, strict JSON, resume
rules, CSV and TensorBoard logs, the best checkpoint, progress lines, evaluate and plot."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from tagtool_cli.main import tagtool

from tagmodels.training import logs, progress
from tagmodels.training.best import Selection
from tagmodels.training.divergence import TrainingDiverged
from tagmodels.training.loop import Schedule, fit
from tagmodels.training.runs import RunDir


def run(*args) -> object:
    return CliRunner().invoke(tagtool, [str(a) for a in args])


def ok(*args) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


class Scripted:
    """A tiny least-squares objective whose validation figure follows a script, and whose
    cost turns NaN in a chosen epoch (0-based)."""

    def __init__(self, scores: list[float], nan_in_epoch: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.x = torch.randn(12, 3, generator=torch.Generator().manual_seed(1))
        self.scores, self.nan_in_epoch, self.epoch = scores, nan_in_epoch, 0

    def inputs(self, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor]:
        return (self.x[batch],)

    def cost(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        cost = (model(x) - 1).pow(2).mean()
        return cost * math.nan if self.epoch == self.nan_in_epoch else cost

    def validate(self) -> dict[str, float]:
        self.epoch += 1
        return {"valid_ami": self.scores[self.epoch - 1], "valid_cost": math.nan}


def scripted_fit(path: Path, scores: list[float], epochs: int, **kwargs) -> list[dict]:
    run = RunDir(path)
    run.create({"note": "scripted"})
    return fit(Scripted(scores, **kwargs), 12, Schedule(epochs, 0.1, 4, seed=0), run, progress=False,
               keep_best=Selection("valid_ami"))


def test_best_pt_holds_the_parameters_of_the_best_validation_epoch(tmp_path):
    scripted_fit(tmp_path / "three", [0.1, 0.5, 0.2], epochs=3)
    scripted_fit(tmp_path / "two", [0.1, 0.5], epochs=2)
    best = torch.load(tmp_path / "three" / "best.pt", weights_only=False)
    last_of_two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    assert [row["epoch"] for row in best["history"]] == [1, 2] and best["value"] == 0.5
    assert all(torch.equal(best["model"][k], last_of_two["model"][k]) for k in best["model"])
    assert Selection("valid_ami").best_epoch([{"epoch": 1, "valid_ami": math.nan}, {"epoch": 2, "valid_ami": 0.3},
                                              {"epoch": 3, "valid_ami": 0.3}]) == 2
    assert Selection("valid_error", higher_is_better=False).best_epoch(
        [{"epoch": 1, "valid_error": 9.0}, {"epoch": 2, "valid_error": 4.0}]) == 2


def test_a_non_finite_cost_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="the cost became nan at epoch 2, step 1 .* keeps the checkpoint of epoch 1"):
        scripted_fit(tmp_path / "run", [0.1, 0.2, 0.3], epochs=3, nan_in_epoch=1)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert [row["epoch"] for row in checkpoint["history"]] == [1]
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values())
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "NaN" not in text and json.loads(text)["valid_cost"] is None  # strict JSON: null


def test_cli_divergence_is_one_line_and_leaves_no_run(shapes_file, tmp_path):
    result = run("train", "--data", shapes_file, "--out", tmp_path / "run", "--epochs", "3", "--lr", "1e12", "--quiet")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert re.match(r"Error: training diverged: the cost became (nan|inf|-inf) at epoch 1, step \d+", result.output)
    assert "lower --lr" in result.output and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def trained(shapes_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    ok("train", "--data", shapes_file, "--out", out, "--epochs", "2", "--batch-size", "32", "--quiet")
    return out


@pytest.fixture()
def two_epochs(trained, tmp_path) -> Path:
    """A copy of a run of two epochs, for the test to change."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.mark.parametrize("option, message", [
    (["--seed", "3"], "--seed 3 contradicts the run's seed 0"),
    (["--preset", "shapes-paper"], "--preset shapes-paper contradicts the run's preset shapes-small"),
    (["--lr", "0.1"], "--lr 0.1 contradicts the run's lr 0.002"),
    (["--data", "{other}"], "contradicts the run's data"),
    (["--epochs", "1"], "has already trained 2 epochs; give at least 2"),
    (["--overwrite"], "give one of them"),
])
def test_resume_refuses_options_that_contradict_the_run(option, message, two_epochs, tmp_path):
    other = tmp_path / "other.h5"
    other.write_bytes(b"")
    config = (two_epochs / "config.json").read_text()
    result = run("train", "--out", two_epochs, "--resume", *[o.format(other=other) for o in option])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert message in result.output
    assert (two_epochs / "config.json").read_text() == config


def test_resume_accepts_the_runs_own_values_and_records_more_epochs(two_epochs, shapes_file):
    config = json.loads((two_epochs / "config.json").read_text())
    config["provenance"]["threads"] = 99  # as if trained with another thread count
    (two_epochs / "config.json").write_text(json.dumps(config))
    result = run("train", "--out", two_epochs, "--resume", "--epochs", "3", "--seed", "0", "--data", shapes_file,
                 "--batch-size", "32", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"Warning: this run last trained with threads 99, now {torch.get_num_threads()}" in result.output
    config = json.loads((two_epochs / "config.json").read_text())
    assert config["training"]["epochs"] == 3
    [record] = config["resumes"]
    assert record["after_epoch"] == 2 and record["epochs"] == 3 and record["threads"] == torch.get_num_threads()
    assert len((two_epochs / "metrics.jsonl").read_text().splitlines()) == 3


def test_csv_beside_metrics_and_progress_lines_with_the_overall_eta(shapes_file, tmp_path):
    out = tmp_path / "run"
    output = ok("train", "--data", shapes_file, "--out", out, "--epochs", "2", "--batch-size", "32")
    lines = [line for line in output.splitlines() if line.startswith("epoch ")]  # not a terminal: plain lines
    assert len(lines) == 2
    assert re.fullmatch(r"epoch 1/2: lr [\d.]+, cost [\d.]+, valid_cost [\d.]+, valid_ami [-\d.e]+ \([\d.]+ s, ETA \d+:\d\d\)", lines[0])
    jsonl = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert [float(row["cost"]) for row in rows] == [row["cost"] for row in jsonl]
    assert [float(rows[1][f"valid_ami_iterations_{i}"]) for i in (1, 2, 3)] == jsonl[1]["valid_ami_iterations"]


class RecordingWriter:
    """Stands in for TensorBoard's SummaryWriter."""

    made: list["RecordingWriter"] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step, self.scalars = log_dir, purge_step, []
        RecordingWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.scalars.append((tag, global_step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_tensorboard_events_per_epoch_where_tensorboard_imports(two_epochs, monkeypatch):
    monkeypatch.setattr(logs, "summary_writer_class", lambda: RecordingWriter)
    RecordingWriter.made.clear()
    ok("train", "--out", two_epochs, "--resume", "--epochs", "3", "--quiet")
    [writer] = RecordingWriter.made
    assert writer.log_dir == str(two_epochs / "tensorboard") and writer.purge_step == 3
    assert {tag for tag, step in writer.scalars if step == 3} >= {"cost", "valid_cost", "valid_ami", "valid_ami_iterations_1"}
    assert {step for _, step in writer.scalars} == {3}


def test_real_tensorboard_event_files(shapes_file, tmp_path):
    pytest.importorskip("tensorboard")
    ok("train", "--data", shapes_file, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_no_tensorboard_means_no_event_files(two_epochs, monkeypatch):
    monkeypatch.setattr(logs, "summary_writer_class", lambda: None)
    ok("train", "--out", two_epochs, "--resume", "--epochs", "3", "--quiet")
    assert (two_epochs / "metrics.csv").exists()


def test_evaluate_best_or_last_checkpoint(two_epochs, tmp_path):
    history = [json.loads(line) for line in (two_epochs / "metrics.jsonl").read_text().splitlines()]
    best = max(history, key=lambda row: (row["valid_ami"], -row["epoch"]))["epoch"]
    for which, epoch in (("best", best), ("last", 2)):
        output = ok("evaluate", two_epochs, "--checkpoint", which, "--limit", "10", "--json", tmp_path / f"{which}.json")
        assert f"({which} checkpoint, epoch {epoch})" in output
        table = json.loads((tmp_path / f"{which}.json").read_text())
        assert table["checkpoint"] == which and table["checkpoint_epoch"] == epoch


def test_evaluate_checks_its_output_before_evaluating(two_epochs, tmp_path, monkeypatch):
    import tagmodels.tagger.evaluation as evaluation

    monkeypatch.setattr(evaluation, "evaluate_grouping", lambda *a, **k: pytest.fail("evaluated first"))
    for path, message in ((tmp_path / "no" / "x.json", "output directory"), (tmp_path, "is a directory"),
                          (f"{tmp_path}/new/", "names a directory")):
        result = run("evaluate", two_epochs, "--json", path)
        assert result.exit_code != 0 and message in result.output, result.output


def test_evaluate_from_the_true_grouping_says_so(two_epochs, tmp_path):
    output = ok("evaluate", two_epochs, "--initial-m", "oracle", "--limit", "10", "--json", tmp_path / "oracle.json")
    assert "m^0 = the true grouping" in output
    oracle = json.loads((tmp_path / "oracle.json").read_text())
    ok("evaluate", two_epochs, "--limit", "10", "--json", tmp_path / "random.json")
    random = json.loads((tmp_path / "random.json").read_text())
    assert (oracle["initial_m"], random["initial_m"]) == ("oracle", "random")
    assert oracle["iterations"][0]["denoising_cost"] != random["iterations"][0]["denoising_cost"]


def test_evaluate_splits_wording_and_the_single_split(two_epochs, tmp_path):
    result = run("evaluate", two_epochs, "--split", "nope")
    assert result.exit_code == 1
    assert result.output.strip().endswith("has no split 'nope'; it has train, valid, test, single")
    assert "AMI after 1 iteration: " in ok("evaluate", two_epochs, "--iterations", "1", "--limit", "5")
    output = ok("evaluate", two_epochs, "--split", "single", "--json", tmp_path / "single.json")
    assert "Note: every image of the single split has at most one scored object" in output
    assert "AMI compares" in json.loads((tmp_path / "single.json").read_text())["note"]
    assert "Note:" not in ok("evaluate", two_epochs, "--limit", "5")


def test_forward_progress_counts_every_example_and_removes_its_hook(monkeypatch):
    updates = []

    class Bar:
        def __init__(self, **kwargs):
            self.total = kwargs["total"]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            updates.append(n)
            return True  # as tqdm's does when it redraws

    monkeypatch.setattr(progress, "tqdm", Bar)
    model = torch.nn.Linear(2, 1)
    with progress.forward_progress(model, total=7, desc="x"):
        outputs = [model(batch) for batch in torch.randn(7, 2).split(3)]
    assert updates == [3, 3, 1] and not model._forward_hooks
    assert all(isinstance(out, torch.Tensor) and out.shape[1] == 1 for out in outputs)


@pytest.mark.parametrize("size, expected", [((0, 0), {"ncols": 80, "nrows": 24}), ((120, 40), {})])
def test_a_terminal_of_unknown_size_gets_a_bar_of_80_columns(size, expected, monkeypatch):
    import os

    from tagdata import terminal

    monkeypatch.setattr(terminal.os, "get_terminal_size", lambda fd: os.terminal_size(size))
    assert terminal.bar_size() == expected


def test_plot_draws_the_learning_curves(two_epochs, tmp_path):
    out = tmp_path / "curves.png"
    assert "2 epochs" in ok("plot", two_epochs, "--out", out)
    with Image.open(out) as image:
        # cost, validation AMI, AMI per iteration, rms of z per true layer
        assert image.size == (4 * 380 + 3 * 6, 280)
        pixels = image.convert("RGB").getcolors(1 << 20)
    assert len(pixels) > 10  # drawn, not blank
    for args, message in (([tmp_path / "x.jpg"], "writes PNG; name the file x.png"),
                          ([f"{tmp_path}/new/"], "names a directory")):
        result = run("plot", two_epochs, "--out", *args)
        assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "new").exists()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_estimates_the_run_then_prints_a_line_a_minute_in_a_log():
    """10 steps of 32 examples (320 per epoch), 3 epochs; 0.1 s per step after a 5 s first step."""
    clock, lines = Clock(), []
    report = progress.TrainingProgress(epochs=3, first=0, clock=clock, write=lines.append)
    batches = [torch.arange(32)] * 10
    assert report.batches(batches, epoch=0).disable  # not a terminal: no bar, plain lines
    clock.now = 5.0
    report.step(1, torch.tensor(1.0))  # the first step warms up: not timed
    for step in range(2, 10):
        clock.now += 0.1
        report.step(step, torch.tensor(1.0))
    assert lines == []  # under ESTIMATE_SECONDS timed, and not the epoch's last step
    clock.now += 0.1
    report.step(10, torch.tensor(1.0))
    assert lines == ["about 3 s of training for 3 epochs at 320 samples/s"]  # 9 steps x 32 in 0.9 s

    report.batches(batches, epoch=1)
    clock.now += 59.0
    report.step(1, torch.tensor(1.0))
    assert len(lines) == 1  # less than a minute into the epoch
    clock.now += 1.0  # 60 s into epoch 2 (of 3), after 2 of its 10 steps: 64 examples
    report.step(2, torch.tensor(1.0))
    # 1.2 epochs in 65.9 s: 1.8 left take 99 s
    assert lines[1] == "epoch 2/3: 64/320 examples, 1 samples/s, 4:00 left in the epoch, ETA 1:39"
    clock.now += 30.0
    report.step(3, torch.tensor(1.0))
    assert len(lines) == 2  # the next line a minute after this one


def test_progress_prints_nothing_when_quiet():
    clock, lines = Clock(), []
    report = progress.TrainingProgress(epochs=1, first=0, enabled=False, clock=clock, write=lines.append)
    report.batches([torch.arange(4)] * 3, epoch=0)
    for step in (1, 2, 3):
        clock.now += 100.0
        report.step(step, torch.tensor(1.0))
    report.epoch_done({"epoch": 1, "cost": 1.0, "seconds": 300.0})
    assert lines == []


def test_rough_durations():
    assert [progress.rough_duration(s) for s in (40.4, 89, 720, 5399, 11520)] == ["40 s", "89 s", "12 min", "90 min", "3.2 h"]
