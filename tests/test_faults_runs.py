"""Run directories under hostile use (issue 19, part 5): no existing data lost (a run without
config.json, two writers at once, an output onto a symbolic link loop), and run files that
record what happened (a failed resume, a kill between the checkpoint and what follows it, a
full disk between checkpoint.pt and best.pt, data made again under the same name)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_faults import ROOT, assert_one_error_line, run, trained_run  # noqa: F401 (fixture)

import tagdata
from tagdata import atomic, locking
from tagmodels.training import grouping

RUN_FILES = ("config.json", "checkpoint.pt", "best.pt", "metrics.jsonl", "metrics.csv")


def copy_run(source: Path, target: Path, names=RUN_FILES) -> Path:
    target.mkdir()
    for name in names:
        shutil.copy(source / name, target / name)
    return target


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def history_of(path: Path) -> list[dict]:
    return torch.load(path, weights_only=False)["history"]


# ----------------------------------------------------------------------------- existing data


def test_train_without_overwrite_keeps_a_run_whose_config_is_gone(trained_run, shapes_file, tmp_path):
    out = copy_run(trained_run, tmp_path / "run", RUN_FILES[1:])
    before = contents(out)
    result = run("train", "--data", shapes_file, "--out", out, "--epochs", "1", "--quiet")
    assert_one_error_line(result, "holds checkpoint.pt, best.pt, metrics.jsonl, metrics.csv of a run without "
                                  "config.json: pass --overwrite")
    assert contents(out) == before


HOLDER = """
import sys
from tagdata import locking
locking.claim(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_a_second_writer_of_a_run_is_refused_and_a_killed_ones_lock_does_not_block(trained_run, shapes_file, tmp_path):
    out = copy_run(trained_run, tmp_path / "run")
    before = contents(out)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = f"{out} is being written by another process (pid {holder.pid}): wait for it to end, or give another --out"
        again = run("train", "--data", shapes_file, "--out", out, "--overwrite", "--seed", "7", "--epochs", "1", "--quiet")
        assert_one_error_line(again, busy)
        assert_one_error_line(run("train", "--out", out, "--resume", "--epochs", "2", "--quiet"), busy)
        assert contents(out) == {**before, locking.LOCK: f"{holder.pid}\n".encode()}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / locking.LOCK).exists()  # SIGKILL: the file stays, its lock went with the process
    result = run("train", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert not (out / locking.LOCK).exists()  # released (and removed) when the command ends


def test_outputs_onto_a_symbolic_link_loop_are_refused_before_any_work(trained_run, tmp_path, monkeypatch):
    loop = tmp_path / "loop.h5"
    loop.symlink_to(loop)
    for overwrite in ([], ["--overwrite"]):
        result = run("make-dataset", "shapes", "--train", "5", "--out", loop, *overwrite)
        assert_one_error_line(result, f"output path {loop} is a symbolic link that loops")
    assert loop.is_symlink() and sorted(tmp_path.iterdir()) == [loop]

    def never(*args, **kwargs):
        raise AssertionError("evaluated before the output was checked")

    monkeypatch.setattr("tagmodels.tagger.evaluation.evaluate_grouping", never)
    assert_one_error_line(run("evaluate", trained_run, "--json", loop), f"output path {loop} is a symbolic link that loops")


# ----------------------------------------------------------------------------- run records


def test_a_resume_from_a_truncated_checkpoint_is_one_line_and_leaves_config_json(trained_run, tmp_path):
    out = copy_run(trained_run, tmp_path / "run")
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    before = contents(out)
    line = assert_one_error_line(run("train", "--out", out, "--resume", "--epochs", "3", "--quiet"),
                                 f"checkpoint {out / 'checkpoint.pt'} cannot be read (damaged or cut short?")
    assert len(line) < 250
    assert contents(out) == before
    assert_one_error_line(run("evaluate", out, "--limit", "5"), "cannot be read (damaged or cut short?")


@pytest.mark.parametrize("state", [torch.zeros(3), {"model": {}, "history": [{"cost": 1.0}]}])
def test_a_foreign_checkpoint_is_one_line(state, trained_run, tmp_path):
    out = copy_run(trained_run, tmp_path / "run")
    torch.save(state, out / "checkpoint.pt")
    before = contents(out)
    message = f"{out / 'checkpoint.pt'} is not a checkpoint written by tagtool"
    assert_one_error_line(run("evaluate", out, "--limit", "5"), message)
    assert_one_error_line(run("train", "--out", out, "--resume", "--quiet"), message)
    assert contents(out) == before


def test_a_resume_that_fails_on_its_data_puts_config_json_back(trained_run, texture_file, tmp_path):
    """Data of another kind under the run's data path (a run recorded before the data's
    hashes were): refused by its size, and the resume's record taken back."""
    out = copy_run(trained_run, tmp_path / "run")
    config = json.loads((out / "config.json").read_text())
    del config["data_identity"]
    config["data"] = str(texture_file)
    (out / "config.json").write_text(json.dumps(config))
    before = contents(out)
    result = run("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert_one_error_line(result, f"{texture_file} has 784 pixels per image but the model takes 400")
    assert contents(out) == before


def test_resume_refuses_a_data_file_made_again_with_another_seed(shapes_file, tmp_path):
    data = tmp_path / "shapes.h5"
    tagdata.make_dataset(tagdata.with_overrides(tagdata.resolve_spec("shapes"), train=32, valid=8, test=8, single=0), data)
    out = tmp_path / "run"
    assert run("train", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "32", "--quiet").exit_code == 0
    assert run("make-dataset", "shapes", "--train", "32", "--valid", "8", "--test", "8", "--single", "0",
               "--seed", "5", "--out", data, "--overwrite").exit_code == 0
    before = contents(out)
    result = run("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert_one_error_line(result, f"{data} is not the data file this run trained on: its split hashes (train, valid, "
                                  "test) differ", "seed 5 where the run's had 1")
    assert contents(out) == before


@pytest.mark.parametrize("damage", ["missing", "cut"])
def test_resume_repairs_the_metrics_of_an_epoch_killed_before_its_line(damage, trained_run, tmp_path):
    out = copy_run(trained_run, tmp_path / "run")
    good = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text("" if damage == "missing" else good[: len(good) // 2])
    (out / "metrics.csv").unlink()
    # evaluate names the epoch its checkpoint holds, whatever metrics.jsonl says
    assert "(last checkpoint, epoch 1)" in run("evaluate", out, "--limit", "5", "--iterations", "1").output
    if damage == "cut":
        assert_one_error_line(run("plot", out, "--out", tmp_path / "p.png"),
                              f"{out / 'metrics.jsonl'}, line 1, is not a metrics line (cut short",
                              f"tagtool train --out {out} --resume` rewrites it")
    result = run("train", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "metrics.jsonl").read_text() == good
    assert (out / "metrics.csv").read_text() == (trained_run / "metrics.csv").read_text()
    assert run("plot", out, "--out", tmp_path / "p.png").exit_code == 0


def test_best_pt_is_never_ahead_of_the_run_and_a_full_disk_before_it_is_repaired(shapes_file, tmp_path, monkeypatch):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    out = tmp_path / "run"
    real = atomic._create_temporary

    def best_on_full_disk(path: Path):  # as full_disk, for best.pt alone
        fd, temporary = real(path)
        if path.name == "best.pt":
            temporary.unlink()
            temporary.symlink_to("/dev/full")
        return fd, temporary

    monkeypatch.setattr(atomic, "_create_temporary", best_on_full_disk)
    result = run("train", "--data", shapes_file, "--out", out, "--epochs", "1", "--batch-size", "32", "--quiet")
    assert result.exit_code == 1 and "No space left on device" in result.output
    monkeypatch.undo()
    assert not (out / "best.pt").exists() and [row["epoch"] for row in history_of(out / "checkpoint.pt")] == [1]
    assert_one_error_line(run("evaluate", out, "--checkpoint", "best", "--limit", "5"), f"{out} has no best.pt")
    assert run("train", "--out", out, "--resume", "--quiet").exit_code == 0
    best = torch.load(out / "best.pt", weights_only=False)
    last = torch.load(out / "checkpoint.pt", weights_only=False)
    assert [row["epoch"] for row in best["history"]] == [1]
    assert all(torch.equal(best["model"][name], last["model"][name]) for name in last["model"])
    shown = run("evaluate", out, "--checkpoint", "best", "--limit", "5", "--iterations", "1")
    assert "(best checkpoint, epoch 1)" in shown.output


def test_evaluate_names_the_epoch_best_pt_holds(trained_run, tmp_path):
    """A best.pt of an earlier epoch than metrics.jsonl's best (the state a kill between
    checkpoint.pt and best.pt leaves) is named by its own epoch."""
    out = copy_run(trained_run, tmp_path / "run")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows.append({**rows[-1], "epoch": 2, "valid_ami": rows[-1]["valid_ami"] + 1})
    (out / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    shown = run("evaluate", out, "--checkpoint", "best", "--limit", "5", "--iterations", "1")
    assert "(best checkpoint, epoch 1)" in shown.output, shown.output


def test_a_run_is_not_left_locked_by_a_failed_start(shapes_file, tmp_path, monkeypatch):
    def fail(self):
        raise tagdata.UserError("validation failed")

    monkeypatch.setattr(grouping.GroupingObjective, "validate", fail)
    out = tmp_path / "run"
    assert_one_error_line(run("train", "--data", shapes_file, "--out", out, "--epochs", "1", "--quiet"), "validation failed")
    assert not out.exists() and locking._held == {}
