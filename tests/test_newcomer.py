"""What a newcomer trips over (issue 9, items 4-5): what a dataset records of its MNIST files,
output names, `tagtool list`, help texts, and the project's licence and citation files."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import sys
from pathlib import Path

import click
import h5py
import pytest
from click.testing import CliRunner
from tagtool_cli.main import tagtool
from tagtool_cli.model_commands import train

from tagdata.idx import STANDARD_SHA256
from tagdata.specs import builtin_names
from tagmodels.tagger.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def run(*args) -> object:
    return CliRunner().invoke(tagtool, [str(a) for a in args])


def idx_sha256(path: Path) -> str:
    raw = path.read_bytes()
    return hashlib.sha256(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).hexdigest()


def test_texture_files_record_their_mnist_files_and_warn_when_not_standard(tmp_path, tiny_texture_spec_file,
                                                                          tiny_mnist_dir):
    out = tmp_path / "tm.h5"
    result = run("make-dataset", tiny_texture_spec_file, "--mnist-dir", tiny_mnist_dir, "--out", out)
    assert result.exit_code == 0, result.output
    for stem in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert "is not the standard MNIST file" in result.output and stem in result.output
    with h5py.File(out, "r") as f:
        assert f.attrs["mnist_standard"] == False  # noqa: E712 - numpy bool
        for stem in STANDARD_SHA256:
            path = next(tiny_mnist_dir.glob(f"{stem}*"))
            assert f.attrs[f"mnist.{stem}.sha256"] == idx_sha256(path)


def test_both_copies_present_says_which_was_read(tmp_path, tiny_texture_spec_file, tiny_mnist_dir):
    mnist = tmp_path / "mnist"
    shutil.copytree(tiny_mnist_dir, mnist)
    gzipped = mnist / "train-images-idx3-ubyte.gz"
    (mnist / "train-images-idx3-ubyte").write_bytes(gzip.decompress(gzipped.read_bytes()))
    result = run("make-dataset", tiny_texture_spec_file, "--mnist-dir", mnist, "--out", tmp_path / "tm.h5")
    assert result.exit_code == 0, result.output
    assert (f"Note: {mnist} holds both train-images-idx3-ubyte and train-images-idx3-ubyte.gz; "
            "read train-images-idx3-ubyte") in result.output


def test_standard_mnist_is_recognised(tmp_path, real_mnist_dir):
    out = tmp_path / "tm1.h5"
    result = run("make-dataset", "texture-mnist1", "--mnist-dir", real_mnist_dir, "--train", "5", "--valid", "5",
                 "--test", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Note:" not in result.output
    with h5py.File(out, "r") as f:
        assert f.attrs["mnist_standard"] == True  # noqa: E712 - numpy bool
        assert f.attrs["mnist.t10k-images-idx3-ubyte.sha256"] == STANDARD_SHA256["t10k-images-idx3-ubyte"]


def test_shapes_files_record_no_mnist(shapes_file):
    with h5py.File(shapes_file, "r") as f:
        assert not [name for name in f.attrs if name.startswith("mnist")]


@pytest.mark.parametrize("args, message", [
    (["make-dataset", "shapes", "--out", "{tmp}/newdir/"], "--out {tmp}/newdir/ names a directory"),
    (["show-dataset", "{data}", "--out", "{tmp}/x.jpg"], "--out {tmp}/x.jpg: this command writes PNG; name the file x.png"),
    (["show-dataset", "{data}", "--out", "{tmp}/grid"], "name the file grid.png"),
])
def test_output_names_that_would_mislead_are_refused(args, message, tmp_path, shapes_file):
    result = run(*[a.format(tmp=tmp_path, data=shapes_file) for a in args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message.format(tmp=tmp_path) in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_list_shows_datasets_and_presets_with_their_values():
    result = run("list")
    assert result.exit_code == 0, result.output
    for name in builtin_names():
        assert f"  {name} " in result.output
    assert re.search(r"\n  texture-mnist2 +texture-mnist +28x28  2 digits +train 50000 / valid 10000 / test 10000; "
                     r"seed 12\n", result.output)
    assert re.search(r"\n  texture-mnist1-binary +texture-mnist +28x28  1 digit, hard edges +train 50000", result.output)
    for name, preset in PRESETS.items():
        assert f"  {name}:" in result.output
        assert re.search(rf"\n    lr +{preset.lr}\n", result.output)
        assert re.search(rf"\n    initial_variance +{preset.initial_variance}\n", result.output)
    assert run("list", "presets").output.startswith("presets")


def test_help_names_the_specs_and_every_train_option_its_preset_values():
    help_text = " ".join(run("make-dataset", "--help").output.split())
    assert all(name in help_text for name in builtin_names())
    for option in train.params:
        if isinstance(option, click.Option) and option.name != "help":
            assert option.help, option.name
    options = {option.name: " ".join(option.help.split()) for option in train.params if isinstance(option, click.Option)}
    assert options["epochs"].endswith("[preset: demo 18, shapes-paper 100, shapes-small 40, texture-cpu 24, texture-paper 150, texture-small 10]")
    assert options["groups"].endswith("[every preset: 4]")
    assert "shapes-small 0.002" in options["lr"] and "shapes-small layer" in options["norm"]


def test_top_level_summaries_are_not_cut_off():
    output = run("--help").output
    commands = output.split("Commands:")[1]
    assert "..." not in commands
    for phrase in ("writes DIR/table.md.", "per epoch to --out.", "(the paper's Figures 4 and 5).",
                   "with their values."):
        assert phrase in " ".join(commands.split())


def test_licence_citation_and_typing_markers():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "MIT"}
    assert pyproject["project"]["optional-dependencies"]["tensorboard"] == ["tensorboard>=2.10"]
    citation = (ROOT / "CITATION.cff").read_text()
    assert citation.startswith("cff-version: 1.2.0")
    assert 'title: "Tagger: Deep Unsupervised Perceptual Grouping"' in citation and "family-names: Greff" in citation
    assert "preferred-citation:" in citation and "license: MIT" in citation
    for package in ("tagdata", "tagmodels", "cli"):
        assert (ROOT / package / "py.typed").exists()
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert all(package_data[name] == ["py.typed"] for name in ("tagdata", "tagmodels", "tagtool_cli"))
