"""Damaged and foreign input ends in one `Error:` line (issue 19, part 5): datasets of another
layout, NaN pixels, damaged HDF5 blocks, a dataset of another kind in a benchmark, foreign
JSON, memory that cannot be had, absent devices, refused commands that made folders; and
the Python API raises clear, typed errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_faults import assert_one_error_line, run, trained_run  # noqa: F401 (fixture)
from tagtool_cli.main import memory_shortage

import tagmodels
from tagdata.errors import InvalidArgument, UserError
from tagmodels.device import resolve_device
from tagmodels.training import grouping


def edited_copy(source: Path, target: Path, edit) -> Path:
    """A copy of a dataset file with ``edit(train_group)`` applied to its train split."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as file:
        edit(file["train"])
    return target


def replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    del group[name]
    group[name] = data


LAYOUTS = {
    "uint8 images": (lambda g: replace(g, "images", (g["images"][...] * 255).astype(np.uint8)),
                     "images are uint8 of shape (64, 1, 20, 20), where tagdata writes float32"),
    "masks of another size": (lambda g: replace(g, "masks", g["masks"][:, :, :10, :10]),
                              "masks are float32 of shape (64, 4, 10, 10), where tagdata writes float32 of shape (64, 4, 20, 20)"),
    "no (1, H, W) axes": (lambda g: replace(g, "images", g["images"][:, 0]),
                          "images are float32 of shape (64, 20, 20)"),
    "short segmentation": (lambda g: replace(g, "segmentation", g["segmentation"][:50]),
                           "segmentation are uint8 of shape (50, 20, 20), where tagdata writes uint8 of shape (64, 20, 20)"),
}


@pytest.mark.parametrize("damage", sorted(LAYOUTS))
def test_a_dataset_of_another_layout_is_one_line_naming_the_array(damage, shapes_file, tmp_path):
    edit, message = LAYOUTS[damage]
    data = edited_copy(shapes_file, tmp_path / "odd.h5", edit)
    result = run("train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert_one_error_line(result, f"{data}: split 'train' {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.h5"]


def test_nan_pixels_are_refused_by_train_and_evaluate(shapes_file, trained_run, tmp_path):
    def poison(group):
        images = group["images"][...]
        images[3, 0, 5, 5] = np.nan
        replace(group, "images", images)

    data = edited_copy(shapes_file, tmp_path / "nan.h5", poison)
    result = run("train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert_one_error_line(result, f"{data}: split 'train' has 1 pixels that are NaN or infinite (the first in example 3)")
    with h5py.File(data, "r+") as file:  # the evaluated split too
        file["test"]["images"][0, 0, 0, 0] = np.inf
    assert_one_error_line(run("evaluate", trained_run, "--data", data, "--limit", "5"),
                          f"{data}: split 'test' has 1 pixels that are NaN or infinite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.h5"]


def test_damaged_hdf5_blocks_are_named_with_the_file(shapes_file, tmp_path):
    data = tmp_path / "damaged.h5"
    shutil.copy(shapes_file, data)
    with h5py.File(data, "r") as file:
        info = file["train"]["images"].id.get_chunk_info(2)
    with open(data, "r+b") as raw:  # scramble the middle of one compressed chunk
        raw.seek(info.byte_offset + 4)
        raw.write(bytes(range(200, 200 + min(40, info.size - 8))))
    result = run("train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert_one_error_line(result, f"{data}: cannot read /train/images (damaged data", "make the file again")


def test_a_benchmark_given_shapes_for_texture_mnist_refuses_before_starting_a_cell(shapes_file, tmp_path):
    out = tmp_path / "bench"
    (out / "data").mkdir(parents=True)
    shutil.copy(shapes_file, out / "data" / "texture-mnist1.h5")
    result = run("benchmark", "--method", "fc-mlp", "--dataset", "texture-mnist1", "--labels", "50000",
                 "--out", out, "--quiet", "--device", "cpu")
    assert_ends_in_error_line_only(result, f"{out / 'data' / 'texture-mnist1.h5'} holds shapes (shapes) data, "
                                           "not texture-mnist1; delete it to have it made again")
    assert list((out / "runs").iterdir()) == []


def assert_ends_in_error_line_only(result, *fragments: str) -> None:
    """The benchmark prints its precision line first; then one `Error:` line, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and all(f in last for f in fragments), result.output


def test_a_refused_benchmark_leaves_no_folder(tmp_path):
    out = tmp_path / "bench"
    result = run("benchmark", "--method", "fc-mlp", "--dataset", "texture-mnist1", "--labels", "50000",
                 "--out", out, "--mnist-dir", tmp_path / "no-mnist", "--quiet", "--device", "cpu")
    assert_ends_in_error_line_only(result)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_ablation_leaves_no_folder(texture_file, tmp_path):
    result = run("ablation", "--data", texture_file, "--out", tmp_path / "ablation", "--epochs", "1", "--device", "cpu")
    assert_ends_in_error_line_only(result, "preset 'shapes-small' is for shapes data")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- foreign JSON


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "is not an evaluation written by `tagtool evaluate --json`"),
    ('{"training": {"norm": "batch"}, "iterations": [{"ami": 0.5}]}', "is not an evaluation"),
    ('{"training": {"norm": "batch", "seed": 0, "epochs": 1}, "iterations": [{"ami": "high", "denoising_cost": 1}]}',
     "is not an evaluation"),
    ('{"training": ', "is not an evaluation"),
])
def test_table1_refuses_foreign_or_damaged_json(text, message, tmp_path):
    path = tmp_path / "e.json"
    path.write_text(text)
    assert_one_error_line(run("table1", path), f"{path} {message}")


@pytest.mark.parametrize("command", [["plot", "{run}", "--out", "{tmp}/p.png"],
                                     ["compare", "{run}", "--out", "{tmp}/c.png"],
                                     ["evaluate", "{run}", "--limit", "5"],
                                     ["generalization", "{run}", "--data", "{run}/x.h5"]])
def test_a_config_json_that_is_not_an_object_is_one_line(command, trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    (out / "config.json").write_text("[]")
    result = run(*[a.format(run=out, tmp=tmp_path) for a in command])
    assert_one_error_line(result, f"{out / 'config.json'} is not a run's config (a JSON list, not an object)")


@pytest.mark.parametrize("line", ['{"epoch": 1, "cost": 0.5', "[1, 2]", '{"cost": 0.5}', "\udcff"])
def test_plot_and_compare_refuse_a_damaged_metrics_line(line, trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    (out / "metrics.jsonl").write_text(line + "\n", errors="surrogateescape")
    for command in (["plot", out, "--out", tmp_path / "p.png"], ["compare", out, "--out", tmp_path / "c.png"]):
        assert_one_error_line(run(*command), f"{out / 'metrics.jsonl'}, line 1, is not a metrics line")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("name, text, message", [
    ("benchmark.json", "[]", "is not a benchmark's record"),
    ("benchmark.json", "{", "is not valid JSON"),
    ("runs/fc-mlp_texture-mnist1_50000_seed0/result.json", '{"test_error": "low"}', "is not a benchmark result"),
])
def test_the_benchmark_refuses_foreign_json(name, text, message, tmp_path):
    out = tmp_path / "bench"
    (out / name).parent.mkdir(parents=True)
    (out / name).write_text(text)
    result = run("benchmark", "--method", "fc-mlp", "--dataset", "texture-mnist1", "--labels", "50000",
                 "--out", out, "--quiet", "--device", "cpu")
    assert_ends_in_error_line_only(result, f"{out / name} {message}")


# ----------------------------------------------------------------------------- machine limits


def test_out_of_memory_is_the_one_error_line_and_leaves_no_run(shapes_file, tmp_path, monkeypatch):
    def huge(self, model, x):
        return torch.empty(2**45)  # 128 TiB: refused by the allocator at once

    monkeypatch.setattr(grouping.GroupingObjective, "cost", huge)
    result = run("train", "--data", shapes_file, "--out", tmp_path / "run", "--epochs", "1", "--quiet")
    assert_one_error_line(result, "out of memory: an allocation of 131072.0 GiB failed on this machine; "
                                  "use a smaller --batch-size, --groups or model")
    assert list(tmp_path.iterdir()) == []


def test_a_cuda_out_of_memory_error_reads_the_same():
    err = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79 GiB")
    assert memory_shortage(err) == ("out of memory: an allocation of 20.00 GiB failed on the GPU; "
                                    "use a smaller --batch-size, --groups or model")
    assert memory_shortage(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None


def test_a_cuda_device_index_is_checked_against_the_devices_present(trained_run, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"device 'cuda:3' is not present: this machine's CUDA devices are cuda:0$"):
        resolve_device("cuda:3")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert_one_error_line(run("evaluate", trained_run, "--device", "cuda:1"), "device 'cuda:1' is not present")


# ----------------------------------------------------------------------------- the Python API


@pytest.mark.parametrize("name, kwargs, message", [
    ("tagger", {"n_inputs": 0}, "create('tagger'): n_inputs must be whole numbers of at least 1, got 0"),
    ("tagger", {"n_inputs": 4, "widths": (8, 0)}, "widths must be whole numbers of at least 1, got (8, 0)"),
    ("fc-ladder", {"n_inputs": 0, "widths": (8,)}, "n_inputs must be whole numbers of at least 1"),
    ("no-such-model", {}, "unknown model 'no-such-model'"),
])
def test_create_refuses_impossible_sizes_with_a_value_error(name, kwargs, message):
    with pytest.raises(ValueError) as caught:
        tagmodels.create(name, **kwargs)
    assert isinstance(caught.value, InvalidArgument) and message in str(caught.value)


def test_load_run_best_of_a_run_without_best_pt_says_so(trained_run, tmp_path):
    """A benchmark cell keeps only checkpoint.pt; so does this copy of a run."""
    out = tmp_path / "cell"
    shutil.copytree(trained_run, out)
    (out / "best.pt").unlink()
    with pytest.raises(UserError, match="has no best.pt: benchmark cells keep only their last checkpoint"):
        tagmodels.load_run(out, "cpu", checkpoint="best")
    assert tagmodels.load_run(out, "cpu").history[-1]["epoch"] == 1
