"""`train --init-from RUN`: a new run that starts from another Tagger run's parameters (a
warm start, e.g. from the random m^0 after training from the true grouping), records where
it started, and is refused with one line when the parameters do not fit."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool


def train(*args) -> object:
    return CliRunner().invoke(tagtool, ["train", "--quiet", "--device", "cpu", *[str(a) for a in args]])


def parameters(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def test_a_new_run_starts_from_the_source_runs_parameters_and_records_it(shapes_file, tmp_path):
    source, warm, fresh = tmp_path / "source", tmp_path / "warm", tmp_path / "fresh"
    common = ["--data", shapes_file, "--preset", "demo", "--epochs", "1"]
    assert train(*common, "--out", source, "--seed", "1").exit_code == 0
    # At a learning rate of 1e-12 an epoch of Adam moves no parameter by more than about 1e-10,
    # so after it a warm run still holds its source's parameters and a fresh one its own.
    for out, extra in ((warm, ["--init-from", source]), (fresh, [])):
        result = train(*common, "--out", out, "--lr", "1e-12", *extra)
        assert result.exit_code == 0, result.output
    start, after_warm, after_fresh = parameters(source), parameters(warm), parameters(fresh)
    assert all(torch.allclose(after_warm[name], value, atol=1e-6) for name, value in start.items())
    assert not all(torch.allclose(after_fresh[name], value, atol=1e-6) for name, value in start.items())
    config = json.loads((warm / "config.json").read_text())
    assert config["init_from"] == {"run": str(source.resolve()), "epoch": 1}
    assert "init_from" not in json.loads((fresh / "config.json").read_text())


def test_parameters_that_do_not_fit_and_a_resume_are_refused_in_one_line(shapes_file, tmp_path):
    source = tmp_path / "source"
    common = ["--data", shapes_file, "--preset", "demo", "--epochs", "1"]
    assert train(*common, "--out", source).exit_code == 0
    cases = (
        ([*common, "--out", tmp_path / "narrow", "--init-from", source, "--z-rank", "8"], "do not fit this run's model"),
        ([*common, "--out", tmp_path / "nowhere", "--init-from", tmp_path / "missing"], "does not exist"),
        (["--out", source, "--resume", "--epochs", "2", "--init-from", source], "--init-from start new ones"),
    )
    for args, message in cases:
        result = train(*args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "narrow").exists() and not (tmp_path / "nowhere").exists()
