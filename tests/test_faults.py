"""Faults end in one `Error:` line, never a traceback, and leave no debris (issue 9, items 1-2):
failed writes, interrupts, kills, impossible sizes, empty datasets, bad options and configs."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli import data_commands
from tagtool_cli.main import tagtool

import tagdata
from tagdata import atomic
from tagdata.limits import fit_block_size
from tagmodels.training import grouping

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--train", "20", "--valid", "5", "--test", "9", "--single", "0"]


def run(*args) -> object:
    return CliRunner().invoke(tagtool, [str(a) for a in args])


def assert_ends_in_error_line(result, *fragments: str) -> str:
    """Exit status 1, no traceback, and one `Error:` line, the last (a command may have
    printed its results before it failed to write them)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert [line for line in lines if line.startswith("Error")] == lines[-1:], result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def assert_one_error_line(result, *fragments: str) -> str:
    assert len(result.output.strip().splitlines()) == 1, result.output
    return assert_ends_in_error_line(result, *fragments)


def temporaries(directory: Path) -> list[Path]:
    return [p for p in directory.rglob(".*.tmp")]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shapes_file) -> Path:
    """A Tagger run of one epoch on the small Shapes file (which has a 'single' split)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = CliRunner().invoke(tagtool, ["train", "--data", str(shapes_file), "--out", str(out), "--epochs", "1",
                                          "--batch-size", "32", "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


def full_disk(monkeypatch) -> None:
    """Every temporary atomic_write makes is a link to /dev/full: the real writers (h5py,
    torch, Pillow, plain text) fail as on a full disk, with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    real = atomic._create_temporary

    def on_full_disk(path: Path):
        fd, temporary = real(path)
        temporary.unlink()
        temporary.symlink_to("/dev/full")
        return fd, temporary

    monkeypatch.setattr(atomic, "_create_temporary", on_full_disk)


def read_only(monkeypatch) -> None:
    """Creating a file in the output directory fails as in a read-only one (we are root
    here, so chmod would not stop the writes)."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


WRITERS = {
    "make-dataset": lambda run_dir, data, out: ["make-dataset", "shapes", *SMALL, "--out", out, "--overwrite"],
    "show-dataset": lambda run_dir, data, out: ["show-dataset", data, "--n", "2", "--out", out],
    "evaluate": lambda run_dir, data, out: ["evaluate", run_dir, "--limit", "10", "--iterations", "1", "--json", out],
    "visualize": lambda run_dir, data, out: ["visualize", run_dir, "--n", "1", "--iterations", "1", "--out", out],
    "plot": lambda run_dir, data, out: ["plot", run_dir, "--out", out],
}
SUFFIX = {"make-dataset": ".h5", "evaluate": ".json"}


@pytest.mark.parametrize("fault, cause", [(full_disk, "No space left on device"), (read_only, "Read-only file system")])
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_failed_write_is_one_line_and_leaves_the_old_file(command, fault, cause, trained_run, shapes_file,
                                                             tmp_path, monkeypatch):
    out = tmp_path / f"out{SUFFIX.get(command, '.png')}"
    out.write_bytes(b"old")
    fault(monkeypatch)
    result = run(*WRITERS[command](trained_run, shapes_file, out))
    assert_ends_in_error_line(result, f"cannot write {out}: {cause}")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("fault, cause", [(full_disk, "No space left on device"), (read_only, "Read-only file system")])
def test_train_that_cannot_write_leaves_no_run(fault, cause, shapes_file, tmp_path, monkeypatch):
    fault(monkeypatch)
    result = run("train", "--data", shapes_file, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert_one_error_line(result, f"{tmp_path / 'run'}", cause)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_training_keeps_the_last_checkpoint(shapes_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run("train", "--data", shapes_file, "--out", out, "--epochs", "1", "--batch-size", "32", "--quiet").exit_code == 0
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "best.pt", "metrics.jsonl")}
    real_resume = grouping.fit_population

    def fit_on_full_disk(*args, **kwargs):  # config.json is recorded first; the disk fills afterwards
        full_disk(monkeypatch)
        return real_resume(*args, **kwargs)

    monkeypatch.setattr(grouping, "fit_population", fit_on_full_disk)
    result = run("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert_ends_in_error_line(result, "No space left on device")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert temporaries(out) == []


def test_torch_save_failure_names_the_cause_not_an_offset():
    """torch.save raises the OSError of the failed write, then a RuntimeError without a cause."""
    try:
        with open("/dev/full", "wb") as file:
            torch.save({"w": torch.zeros(100_000)}, file)
    except (OSError, RuntimeError) as err:
        assert atomic.storage_failure(err) == "No space left on device"
    else:
        pytest.fail("writing to /dev/full succeeded")
    assert atomic.storage_failure(ValueError("a bug")) is None


# ----------------------------------------------------------------------------- kills


KILLED_WRITER = """
import sys
from tagdata.atomic import atomic_write

def write(tmp):
    tmp.write_bytes(b"half a dataset")
    print("writing", flush=True)
    sys.stdin.read()  # until the test kills us

atomic_write(sys.argv[1], write)
"""


def test_a_killed_writers_temporary_is_removed_by_the_next_make_dataset(tmp_path):
    out = tmp_path / "shapes.h5"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert writer.stdout.readline().strip() == "writing"
        [live] = temporaries(tmp_path)
        assert atomic.remove_stale_temporaries(out) == []  # a live writer's file is left alone
        assert live.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert live.exists()  # SIGKILL: nothing could clean up
    result = run("make-dataset", "shapes", *SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"Note: removed {live.name}, left by an earlier run that was killed" in result.output
    assert temporaries(tmp_path) == [] and out.exists()


def test_sigterm_during_make_dataset_ends_like_ctrl_c(tmp_path, monkeypatch):
    out = tmp_path / "shapes.h5"
    out.write_bytes(b"old")
    real = data_commands.make_dataset

    def terminated_midway(*args, progress, **kwargs):
        return real(*args, progress=lambda n: os.kill(os.getpid(), signal.SIGTERM), **kwargs)

    monkeypatch.setattr(data_commands, "make_dataset", terminated_midway)
    result = run("make-dataset", "shapes", *SMALL, "--out", out, "--overwrite")
    assert result.exit_code == 128 + signal.SIGTERM
    assert result.output.strip().splitlines() == [
        f"Interrupted by SIGTERM: nothing was written to {out} (its temporary was removed); run the same command again"
    ]
    assert out.read_bytes() == b"old" and temporaries(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was put back


def test_sigterm_during_training_keeps_the_last_epoch_and_resumes_exactly(shapes_file, tmp_path, monkeypatch):
    args = ["--data", shapes_file, "--epochs", "2", "--batch-size", "32", "--quiet"]
    assert run("train", *args, "--out", tmp_path / "straight").exit_code == 0
    real = grouping.GroupingObjective.validate
    calls = []

    def terminated_in_epoch_two(self):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(grouping.GroupingObjective, "validate", terminated_in_epoch_two)
    out = tmp_path / "killed"
    result = run("train", *args, "--out", out)
    assert result.exit_code == 128 + signal.SIGTERM
    assert result.output.strip().splitlines()[-1] == (
        f"Interrupted by SIGTERM: {out} keeps the checkpoint of epoch 1; "
        f"continue with: tagtool train --out {out} --resume"
    )
    monkeypatch.undo()
    assert run("train", "--out", out, "--resume", "--quiet").exit_code == 0
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(shapes_file, tmp_path, monkeypatch):
    def fail(self):
        raise tagdata.UserError("validation failed")

    monkeypatch.setattr(grouping.GroupingObjective, "validate", fail)
    out = tmp_path / "run"
    args = ["train", "--data", shapes_file, "--out", out, "--epochs", "1", "--quiet"]
    assert_one_error_line(run(*args), "validation failed")
    assert not out.exists()
    monkeypatch.undo()
    assert run(*args).exit_code == 0  # the same command again: no "pass --resume"


def test_a_dataset_without_a_valid_split_is_refused_before_the_run_is_made(tmp_path):
    data = tmp_path / "novalid.h5"
    spec = tagdata.with_overrides(tagdata.resolve_spec("shapes"), train=20, valid=0, test=5, single=0)
    tagdata.make_dataset(spec, data)
    assert_one_error_line(run("train", "--data", data, "--out", tmp_path / "run"), "no split 'valid'")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- sizes and options


def test_impossible_sizes_are_refused_before_allocating(tmp_path):
    spec = tmp_path / "huge.toml"
    text = (ROOT / "data_specs" / "shapes.toml").read_text()
    spec.write_text(text.replace("image_size = [20, 20]", "image_size = [100000, 100000]"))
    assert "image_size = [100000, 100000]" in spec.read_text()
    out = tmp_path / "x.h5"
    assert_one_error_line(run("make-dataset", spec, "--out", out), "'image_size' entries must be in 1..4096")
    assert_one_error_line(run("make-dataset", "shapes", "--train", "10000000000", "--out", out),
                          "needs about", "GiB of memory to generate", "GiB are available")
    assert list(tmp_path.iterdir()) == [spec]


def test_blocks_shrink_to_fit_memory_and_a_dataset_that_cannot_fit_is_refused():
    spec = tagdata.resolve_spec("texture-mnist2")
    assert fit_block_size(spec, 2048, available=2**40) == 2048
    assert 1 <= fit_block_size(spec, 2048, available=200 * 2**20) < 2048
    with pytest.raises(tagdata.UserError, match="needs about .* GiB of memory"):
        fit_block_size(spec, 2048, available=2**20)


@pytest.mark.parametrize("sizes", [
    ["shapes", "--train", "0", "--valid", "0", "--test", "0", "--single", "0"],
    ["texture-mnist1", "--train", "0", "--valid", "0", "--test", "0"],
])
def test_a_dataset_without_examples_is_refused(sizes, tmp_path):
    assert_one_error_line(run("make-dataset", *sizes, "--out", tmp_path / "x.h5"), "every split has 0 examples")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "0"])
def test_train_refuses_a_learning_rate_that_is_not_a_positive_number(lr, shapes_file, tmp_path):
    assert_one_error_line(run("train", "--data", shapes_file, "--out", tmp_path / "run", "--lr", lr),
                          "--lr must be a positive number")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["training"].pop("epochs"), "missing field 'training.epochs'"),
    (lambda c: c.pop("tagger"), "missing field 'tagger'"),
    (lambda c: c["tagger"].pop("n_inputs"), "missing field 'tagger.n_inputs'"),
    (lambda c: c["training"].update(lr="fast"), "field 'training.lr' has the wrong type"),
    (lambda c: c["tagger"].update(colour="red"), "unknown field(s) tagger.colour"),
])
@pytest.mark.parametrize("command", [["evaluate", "{run}", "--limit", "5"], ["train", "--out", "{run}", "--resume"],
                                     ["visualize", "{run}", "--out", "{tmp}/v.png"]])
def test_a_config_missing_a_field_is_one_line(edit, message, command, trained_run, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl"):
        (run_dir / name).write_bytes((trained_run / name).read_bytes())
    config = json.loads((run_dir / "config.json").read_text())
    edit(config)
    (run_dir / "config.json").write_text(json.dumps(config))
    result = run(*[a.format(run=run_dir, tmp=tmp_path) for a in command])
    assert_one_error_line(result, f"{run_dir / 'config.json'}: {message}")
