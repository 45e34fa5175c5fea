"""`tagtool make-dataset`, `show-dataset` and `speed-data` end to end, bad inputs included."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from tagtool_cli.main import tagtool

from tagdata import open_dataset
from tagdata.idx import MNIST_ENV
from tagdata.specs import resolve_spec, spec_to_toml, with_overrides

SMALL = ["--train", "20", "--valid", "5", "--test", "9", "--single", "4"]


def run(*args: str):
    return CliRunner().invoke(tagtool, [str(a) for a in args])


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_make_and_show_shapes(tmp_path):
    out = tmp_path / "shapes.h5"
    result = run("make-dataset", "shapes", *SMALL, "--seed", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "sha256 test" in result.output
    with open_dataset(out) as f:
        assert f.spec["seed"] == 5 and f.spec["splits"] == {"train": 20, "valid": 5, "test": 9, "single": 4}
        assert f.attrs["seed"] == 5
    png = tmp_path / "grid.png"
    result = run("show-dataset", out, "--split", "valid", "--n", "3", "--out", png, "--verify")
    assert result.exit_code == 0, result.output
    for text in ("train: 20 examples, sha256", "masks        float32  (20, 4, 20, 20)",
                 "label histogram (valid", "[splits]", "verify test: ok", "drew 3 valid examples"):
        assert text in result.output
    image = np.asarray(Image.open(png))
    assert image.ndim == 3 and image.shape[1] >= 3 * 3 * 20 * 4  # three panels of 3 examples, upscaled
    assert (image == 128).all(axis=2).any()  # grey unscored pixels are drawn


def test_show_a_fuel_file(tmp_path, shapes_file, fuel_writer):
    with open_dataset(shapes_file) as native:
        data = {"train": native["train"].read(), "test": native["test"].read()}
    fuel_writer(tmp_path / "ref.hdf5", data, "shapes")
    result = run("show-dataset", tmp_path / "ref.hdf5", "--n", "4", "--out", tmp_path / "ref.png")
    assert result.exit_code == 0, result.output
    assert "ref (shapes, fuel layout)" in result.output and "masks        float32  (40, 4, 20, 20)" in result.output


def test_make_texture_from_spec_file_and_env(tmp_path, tiny_texture_spec_file, tiny_mnist_dir, monkeypatch):
    out = tmp_path / "tm.h5"
    result = run("make-dataset", tiny_texture_spec_file, "--mnist-dir", tiny_mnist_dir, "--out", out)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(MNIST_ENV, str(tiny_mnist_dir))
    again = tmp_path / "tm-env.h5"
    result = run("make-dataset", tiny_texture_spec_file, "--out", again)
    assert result.exit_code == 0, result.output
    with open_dataset(out) as a, open_dataset(again) as b:
        assert a.hashes == b.hashes and a.kind == "texture-mnist"
    result = run("show-dataset", out, "--n", "2", "--out", tmp_path / "tm.png")
    assert result.exit_code == 0, result.output


def test_real_texture_mnist2_small(tmp_path, real_mnist_dir):
    out = tmp_path / "tm2.h5"
    result = run("make-dataset", "texture-mnist2", "--mnist-dir", real_mnist_dir,
                 "--train", "30", "--valid", "10", "--test", "10", "--out", out)
    assert result.exit_code == 0, result.output
    with open_dataset(out) as f:
        assert len(f["valid"]) == 10 and f["test"].labels.shape == (10, 2)


@pytest.fixture()
def bad_spec(tmp_path):
    """``bad_spec(old, new)``: path of a small valid Shapes spec with one text edit."""
    text = spec_to_toml(with_overrides(resolve_spec("shapes"), train=3, valid=3, test=3, single=3))
    paths = iter(tmp_path / f"bad{i}.toml" for i in range(1000))

    def make(old: str, new: str) -> str:
        assert old in text
        path = next(paths)
        path.write_text(text.replace(old, new, 1))
        return str(path)

    return make


@pytest.fixture()
def broken_mnist(tmp_path, tiny_mnist_dir):
    """Copy of the tiny MNIST dir whose train images file is replaced by the given bytes."""
    names = iter(f"broken-mnist-{i}" for i in range(1000))

    def make(content: bytes):
        directory = tmp_path / next(names)
        directory.mkdir()
        for path in tiny_mnist_dir.iterdir():
            (directory / path.name).write_bytes(path.read_bytes())
        (directory / "train-images-idx3-ubyte.gz").unlink()
        (directory / "train-images-idx3-ubyte").write_bytes(content)
        return directory

    return make


def test_bad_inputs_give_one_line_and_no_file(tmp_path, bad_spec, broken_mnist, tiny_mnist_dir,
                                              tiny_texture_spec_file, monkeypatch):
    monkeypatch.delenv(MNIST_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on this machine: no torchvision
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "x.h5"
    good_header = bytes([0, 0, 8, 3]) + (60).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    cases = [
        (["make-dataset", "circles"], "unknown dataset 'circles'"),
        (["make-dataset", bad_spec("objects = 3\n", "")], "missing field 'objects'"),
        (["make-dataset", bad_spec("[splits]\n", "[splits]\nextra = 1\n")], "unknown field 'splits.extra'"),
        (["make-dataset", bad_spec("seed = 1\n", 'seed = "one"\n')], "field 'seed' must be an integer, got a string"),
        (["make-dataset", bad_spec("test = 3\n", "test = -2\n")], "'splits.test' must be >= 0, got -2"),
        (["make-dataset", bad_spec("[splits]\n", "[splits\n")], "not valid TOML"),
        (["make-dataset", tmp_path / "nope.toml"], "does not exist"),
        (["make-dataset", "shapes", "--train", "-5"], "--train must be >= 0, got -5"),
        (["make-dataset", "texture-mnist1", "--single", "3"], "--single does not apply to texture-mnist"),
        (["make-dataset", "shapes", "--mnist-dir", tmp_path], "apply to TextureMNIST only"),
        (["make-dataset", "texture-mnist2"], "pass --mnist-dir DIR or set TAGDATA_MNIST_DIR"),
        (["make-dataset", "texture-mnist2", "--mnist-dir", tmp_path / "none"], "MNIST directory"),
        (["make-dataset", "texture-mnist2", "--mnist-dir", out_dir], "MNIST file t10k-images-idx3-ubyte[.gz] not found"),
        (["make-dataset", tiny_texture_spec_file, "--mnist-dir", broken_mnist(good_header + b"\0" * 100)],
         "IDX file truncated"),
        (["make-dataset", tiny_texture_spec_file, "--mnist-dir", broken_mnist(b"GIF89a" + b"\0" * 64)],
         "not an IDX file"),
        (["make-dataset", "texture-mnist2", "--mnist-dir", tiny_mnist_dir],
         "needs MNIST train images 0..49999, but"),
        (["make-dataset", "texture-mnist2", "--train", "60000"], "asks for 60000 examples"),
        (["make-dataset", "texture-mnist2", "--download"], "--download needs torchvision"),
        (["make-dataset", "shapes", "--out", tmp_path / "missing" / "x.h5"], "output directory"),
    ]
    for args, message in cases:
        if "--out" not in args:
            args = args + ["--out", out]
        assert_one_line_error(run(*args), message)
        assert list(out_dir.iterdir()) == [], args

    out.write_bytes(b"old")
    assert_one_line_error(run("make-dataset", "shapes", *SMALL, "--out", out), "already exists")
    assert out.read_bytes() == b"old"
    assert run("make-dataset", "shapes", *SMALL, "--out", out, "--overwrite").exit_code == 0
    assert_one_line_error(run("show-dataset", out, "--split", "nope"), "has no split 'nope'")
    assert_one_line_error(run("show-dataset", tmp_path / "missing.h5"), "does not exist")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    assert_one_line_error(run("show-dataset", tmp_path / "junk.h5"), "not a readable HDF5 file")
    assert_one_line_error(run("show-dataset", out, "--out", tmp_path / "no" / "a.png"), "output directory")
    assert_one_line_error(run("speed-data", "--dataset", "texture-mnist1"), "pass --mnist-dir DIR")


def test_speed_data_small(tmp_path):
    spec_path = tmp_path / "tiny-shapes.toml"
    spec_path.write_text(spec_to_toml(with_overrides(resolve_spec("shapes"), train=30, valid=5, test=5, single=5)))
    out = tmp_path / "bench.json"
    result = run("speed-data", "--dataset", spec_path, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["command"].startswith("tagtool speed-data --dataset=")
    assert {"version", "commit", "machine", "peak_memory", "datasets"} <= set(report)
    entry = report["datasets"][str(spec_path)]
    assert entry["examples"] == 45 and entry["seconds"] > 0 and entry["peak_rss_bytes"] > 10 * 2**20
    assert entry["targets_met"]["peak_under_2GiB"]
