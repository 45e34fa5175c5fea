"""The Table 2 grid: one tiny cell per method end to end, skip and resume, table.md, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

import tagdata
import tagmodels
from tagdata.errors import UserError
from tagmodels.benchmark import grid as benchmark_module
from tagmodels.benchmark.executors import run_inline
from tagmodels.benchmark.grid import Benchmark, Cell, grid
from tagmodels.benchmark.permutation import pixel_permutation
from tagmodels.benchmark.settings import LADDER_DENOISING_WEIGHTS, Scale, get_scale
from tagmodels.benchmark.table import render_table
from tagmodels.training import grouping as tagger_training
from tagmodels.training.classification import ClassificationObjective

MNIST: Path  # set per test by _use_mnist: the real files, or synthetic ones where they are missing
SPLITS = {"train": 120, "valid": 20, "test": 40}


def tiny_scale(epochs: int = 1, name: str = "quick") -> Scale:
    """Every method, 1 epoch, a few units per layer."""
    return Scale(
        name=name,
        splits=SPLITS,
        valid_examples=20,
        methods={
            "fc-mlp": {b: {"widths": [16], "epochs": epochs, "lr": 1e-3} for b in ("50000", "1000")},
            "fc-ladder": {b: {"widths": [12, 10, 8, 8, 6], "noise_std": 0.3, "denoising_weights": LADDER_DENOISING_WEIGHTS,
                              "epochs": epochs, "lr": 2e-3} for b in ("50000", "1000")},
            "tagger": {b: {"fresh_widths": [8, 6], "epochs": epochs, "groups": 3, "iterations": 2, "noise": 0.18,
                           "classification_weight": 0.1, "lr": 2e-4} for b in ("50000", "1000")},
            "convnet": {b: {"channels": [4, 6], "epochs": epochs, "lr": 1e-3} for b in ("50000", "1000")},
        },
        tagger_preset="texture-paper",
        tagger_overrides={"widths": [16, 12, 8], "epochs": 1, "valid_examples": 10, "iterations": 2},
        note="tiny test scale",
    )


@pytest.fixture(autouse=True)
def _use_mnist(mnist_dir):
    global MNIST
    MNIST = mnist_dir


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, mnist_dir) -> Path:
    """Tiny TextureMNIST1 and TextureMNIST2 files, made once per session."""
    directory = tmp_path_factory.mktemp("data")
    for name in ("texture-mnist1", "texture-mnist2"):
        spec = tagdata.with_overrides(tagdata.resolve_spec(name), **SPLITS)
        tagdata.make_dataset(spec, directory / f"{name}.h5", mnist_dir=mnist_dir)
    return directory


def bench_dir(tmp_path: Path, data_dir: Path) -> Path:
    """A benchmark directory whose datasets are already there (copied, not remade)."""
    out = tmp_path / "bench"
    (out / "data").mkdir(parents=True)
    for file in data_dir.glob("*.h5"):
        (out / "data" / file.name).write_bytes(file.read_bytes())
    return out


def make(out: Path, scale: Scale | None = None) -> Benchmark:
    bench = Benchmark(out, scale or tiny_scale(), torch.device("cpu"), str(MNIST), log=lambda line: None)
    bench.open()
    return bench


@pytest.mark.parametrize(
    "method, dataset",
    [("fc-mlp", "texture-mnist2"), ("fc-ladder", "texture-mnist1"), ("tagger", "texture-mnist2"), ("convnet", "texture-mnist1")],
)
def test_one_cell_per_method_end_to_end(tmp_path, data_dir, method, dataset):
    out = bench_dir(tmp_path, data_dir)
    bench = make(out)
    result, ran = bench.run(Cell(method, dataset, "50000", seed=0))
    assert ran
    stored = json.loads((out / "runs" / f"{method}_{dataset}_50000_seed0" / "result.json").read_text())
    assert stored == result
    assert 0.0 <= result["test_error"] <= 100.0
    assert result["epochs"] == 1 and result["test_examples"] == SPLITS["test"]
    assert result["labelled_examples"] == SPLITS["train"]
    for key in ("command", "commit", "device", "seed", "wall_seconds", "train_seconds"):
        assert key in result
    if method == "tagger":
        phase = result["unsupervised_phase"]
        assert phase["epochs"] == 1 and Path(phase["run"]).is_dir()
    # The cell's run loads back through the public API and predicts as the cell scored.
    loaded = tagmodels.load_run(out / "runs" / f"{method}_{dataset}_50000_seed0", device="cpu")
    assert not loaded.model.training and len(loaded.history) == 1
    test = bench.splits(dataset).test
    torch.manual_seed(0)
    assert loaded.model.predict(test.x).shape == (len(test), 10)


@pytest.mark.parametrize("method", ["fc-mlp", "tagger"])
def test_cells_train_under_bf16_autocast(tmp_path, data_dir, method):
    out = bench_dir(tmp_path, data_dir)
    bench = Benchmark(out, tiny_scale(), torch.device("cpu"), str(MNIST), log=lambda line: None, precision="bf16")
    bench.open()
    result, _ = bench.run(Cell(method, "texture-mnist2", "50000", seed=0))
    assert result["execution"] == {"precision": "bf16", "compile": False}
    assert 0.0 <= result["test_error"] <= 100.0


def test_datasets_are_made_from_mnist_when_missing(tmp_path):
    bench = make(tmp_path / "bench", replace(tiny_scale(), splits={"train": 30, "valid": 10, "test": 10}))
    splits = bench.splits("texture-mnist1")
    assert (tmp_path / "bench" / "data" / "texture-mnist1.h5").is_file()
    assert (len(splits.train), len(splits.test)) == (30, 10)
    assert splits.train.labels.shape == (30, 1)


def test_tagger_unsupervised_phase_is_shared_by_both_budgets(tmp_path, data_dir, monkeypatch):
    out = bench_dir(tmp_path, data_dir)
    bench = make(out)
    calls = []
    real_population = tagger_training.fit_population
    def population_spy(members, *args, **kwargs):
        calls.extend(type(member.objective).__name__ for member in members)
        return real_population(members, *args, **kwargs)

    monkeypatch.setattr(benchmark_module, "fit_population", population_spy)
    monkeypatch.setattr(tagger_training, "fit_population", population_spy)  # the unsupervised phase trains through it
    # 1,000 labels need 100 per class: give the tiny dataset's labels as the budget instead.
    monkeypatch.setattr(benchmark_module, "labelled_subset", lambda labels, budget, seed: None if budget == "50000" else torch.arange(0, 120, 4))
    first, _ = bench.run(Cell("tagger", "texture-mnist1", "50000", 0))
    second, _ = bench.run(Cell("tagger", "texture-mnist1", "1000", 0))
    assert first["unsupervised_phase"]["run"] == second["unsupervised_phase"]["run"]
    assert second["labelled_examples"] == 30
    unsupervised = Path(first["unsupervised_phase"]["run"]) / "metrics.jsonl"
    assert len(unsupervised.read_text().splitlines()) == 1  # trained once, reloaded the second time
    assert calls.count("GroupingObjective") == 2 and calls.count("ClassificationObjective") == 2


def test_finished_cells_are_skipped(tmp_path, data_dir):
    out = bench_dir(tmp_path, data_dir)
    bench = make(out)
    cell = Cell("fc-mlp", "texture-mnist1", "50000", 0)
    result, ran = bench.run(cell)
    path = out / "runs" / cell.name / "result.json"
    stamp = path.stat().st_mtime_ns
    again, ran_again = make(out).run(cell)
    assert ran and not ran_again
    assert again == result and path.stat().st_mtime_ns == stamp


def decaying_scale(epochs: int = 3) -> Scale:
    """The tiny scale with the FC Ladder's learning rate decaying after epoch 1."""
    scale = tiny_scale(epochs=epochs)
    for settings in scale.methods["fc-ladder"].values():
        settings["lr_decay_from"] = 1
    return scale


def test_half_finished_cell_resumes_to_exactly_the_uninterrupted_parameters(tmp_path, data_dir, monkeypatch):
    cell = Cell("fc-ladder", "texture-mnist2", "50000", 0, permuted=True)
    straight_dir = bench_dir(tmp_path / "a", data_dir)
    straight, _ = make(straight_dir, decaying_scale()).run(cell)

    out = bench_dir(tmp_path / "b", data_dir)
    real_validate = ClassificationObjective.validate
    calls = []

    def killed_in_epoch_two(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after epoch 1's checkpoint, before epoch 2's
        return real_validate(self)

    monkeypatch.setattr(ClassificationObjective, "validate", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        make(out, decaying_scale()).run(cell)
    assert not (out / "runs" / cell.name / "result.json").exists()
    monkeypatch.setattr(ClassificationObjective, "validate", real_validate)

    resumed, ran = make(out, decaying_scale()).run(cell)
    assert ran and resumed["resumed_at_epoch"] == 1 and resumed["epochs"] == 3
    a = torch.load(straight_dir / "runs" / cell.name / "checkpoint.pt", weights_only=False)
    b = torch.load(out / "runs" / cell.name / "checkpoint.pt", weights_only=False)
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][key][field])), field
    lrs = [row["lr"] for row in b["history"]]
    assert lrs == [row["lr"] for row in a["history"]] == pytest.approx([2e-3, 2e-3, 2e-3 / 2])
    assert resumed["test_error"] == straight["test_error"]


def test_permuted_cell_trains_the_tagger_phase_on_permuted_pixels(tmp_path, data_dir, monkeypatch):
    out = bench_dir(tmp_path, data_dir)
    bench = make(out)
    seen = {}
    real_train = benchmark_module.train_taggers

    def spy(runs, configs, device, resume, progress, splits=None, **kwargs):
        seen["train"] = splits[0][0].x.clone()
        return real_train(runs, configs, device, resume, progress, splits, **kwargs)

    monkeypatch.setattr(benchmark_module, "train_taggers", spy)
    bench.run(Cell("tagger", "texture-mnist1", "50000", 0, permuted=True))
    plain = bench.splits("texture-mnist1").train.x
    perm = pixel_permutation(plain.shape[1], 0)
    assert not torch.equal(seen["train"], plain)
    assert torch.equal(seen["train"], plain[:, perm])


def test_run_started_with_other_settings_is_refused(tmp_path, data_dir, monkeypatch):
    out = bench_dir(tmp_path, data_dir)
    cell = Cell("fc-mlp", "texture-mnist1", "50000", 0)
    monkeypatch.setattr(ClassificationObjective, "validate", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        make(out).run(cell)
    monkeypatch.undo()
    with pytest.raises(UserError, match="other settings"):
        make(out, tiny_scale(epochs=3)).run(cell)


def test_a_directory_holds_one_scale(tmp_path):
    make(tmp_path / "bench")
    with pytest.raises(UserError, match="quick-scale benchmark"):
        make(tmp_path / "bench", tiny_scale(name="paper"))


def test_grid_lists_every_cell_seed_major():
    cells = grid(["fc-mlp", "tagger"], ["texture-mnist1"], ["50000", "1000"], seeds=2, permuted=False)
    assert len(cells) == 8 and cells[0].seed == 0 and cells[-1].seed == 1
    assert cells[0].name == "fc-mlp_texture-mnist1_50000_seed0"
    assert Cell("convnet", "texture-mnist2", "1000", 3, permuted=True).name == "convnet_texture-mnist2_1000-permuted_seed3"


# ---------------------------------------------------------------------------- table.md


def result(method: str, dataset: str, labels: str, error: float, permuted: bool = False, seed: int = 0) -> dict:
    return {"method": method, "dataset": dataset, "labels": labels, "test_error": error, "permuted": permuted,
            "seed": seed, "train_examples": 50000, "device": "cpu: x86_64", "commit": "abc", "train_seconds": 3600}


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    """Table rows keyed by (dataset cell as filled down, method)."""
    out, dataset = {}, ""
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Dataset"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            dataset = cells[0] or dataset
            out[(dataset, cells[1])] = cells[2:]
    return out


def test_table_has_mean_and_sample_std_over_seeds_beside_the_paper():
    text = render_table([
        result("tagger", "texture-mnist1", "50000", 4.0, seed=0),
        result("tagger", "texture-mnist1", "50000", 6.0, seed=1),
        result("tagger", "texture-mnist1", "50000", 5.0, seed=2),
        result("convnet", "texture-mnist2", "1000", 80.25),
    ], scale=get_scale("quick"))
    table = rows(text)
    assert table[("TextureMNIST1 (top-1, chance 90 %)", "FC Tagger")] == ["5.0 ± 1.0 (n=3)", "4.0 ± 0.3 (n=5)", "–", "10.5 ± 0.9 (n=5)"]
    assert table[("TextureMNIST2 (top-2, chance 80 %)", "ConvNet")] == ["–", "12.6 ± 0.4 (n=5)", "80.2 (n=1)", "79.1 ± 0.8 (n=5)"]
    assert "| Dataset | Method | 50k labels | paper, 50k | 1k labels | paper, 1k |" in text
    assert "Scale: quick" in text and "NOT comparable" in text


def test_cpu_scale_uses_the_full_data_and_says_it_is_not_the_papers():
    cpu, paper = get_scale("cpu"), get_scale("paper")
    assert cpu.splits is None and cpu.tagger_preset == "texture-cpu"  # the datasets' own 50,000 / 10,000
    for method in paper.methods:
        for budget in ("50000", "1000"):
            settings, full = cpu.settings(method, budget), paper.settings(method, budget)
            assert settings["epochs"] < full["epochs"]
            size = next(key for key in ("widths", "channels", "fresh_widths") if key in full)
            assert sum(settings[size]) <= sum(full[size])  # never wider than the paper
    text = render_table([result("fc-mlp", "texture-mnist1", "50000", 30.0)], scale=cpu)
    assert "Scale: cpu" in text and "NOT the paper's" in text


def test_table_shows_permuted_pixels_beside_and_users_own_methods():
    text = render_table([
        result("fc-mlp", "texture-mnist1", "50000", 30.0),
        result("fc-mlp", "texture-mnist1", "50000", 31.0, permuted=True),
        result("my-net", "texture-mnist1", "1000", 12.0),
    ])
    assert "| Dataset | Method | 50k labels | 50k labels, permuted pixels | paper, 50k | 1k labels | 1k labels, permuted pixels | paper, 1k |" in text
    table = rows(text)
    assert table[("TextureMNIST1 (top-1, chance 90 %)", "FC MLP")][:3] == ["30.0 (n=1)", "31.0 (n=1)", "31.1 ± 2.2 (n=5)"]
    assert table[("TextureMNIST1 (top-1, chance 90 %)", "my-net")] == ["–", "–", "–", "12.0 (n=1)", "–", "–"]


def test_grid_writes_table_md(tmp_path, data_dir):
    out = bench_dir(tmp_path, data_dir)
    bench = make(out)
    run_inline(bench, [Cell("fc-mlp", "texture-mnist1", "50000", 0), Cell("fc-mlp", "texture-mnist1", "50000", 1)],
               log=lambda line: None)
    text = (out / "table.md").read_text()
    assert "(n=2)" in rows(text)[("TextureMNIST1 (top-1, chance 90 %)", "FC MLP")][0]


# ---------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "must be at least 1"),
        (["--method", "resnet"], "Invalid value for '--method'"),
        (["--labels", "500"], "Invalid value for '--labels'"),
        (["--scale", "huge"], "Invalid value for '--scale'"),
    ],
)
def test_bad_options_give_one_line_and_nonzero_exit(tmp_path, args, message):
    outcome = CliRunner().invoke(tagtool, ["benchmark", "--out", str(tmp_path / "b"), *args])
    assert outcome.exit_code != 0 and message in outcome.output


def test_missing_mnist_dir_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TAGDATA_MNIST_DIR", raising=False)
    outcome = CliRunner().invoke(
        tagtool, ["benchmark", "--method", "fc-mlp", "--dataset", "texture-mnist1", "--labels", "50000",
                  "--out", str(tmp_path / "b"), "--device", "cpu", "--quiet"]
    )
    assert outcome.exit_code == 1
    error_lines = [line for line in outcome.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "--mnist-dir" in error_lines[0]
    assert "Traceback" not in outcome.output
