"""The public API: docs/api.md's example runs as written, the zoo builds and reloads every
model, and a regular (non-editable) install gives a working ``tagtool`` and API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

import tagdata
import tagmodels

ROOT = Path(__file__).resolve().parents[1]


def test_docs_api_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert blocks, "docs/api.md lost its example"
    exec(compile(blocks[0], "docs/api.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    amis = eval(printed[0])
    assert len(amis) == 3 and all(-1.0 <= a <= 1.0 for a in amis)
    assert printed[1] == "[1.]"


@pytest.mark.parametrize(
    "name, kwargs, x",
    [
        ("tagger", {"n_inputs": 16, "widths": (8, 4)}, torch.rand(3, 16)),
        ("fc-mlp", {"n_inputs": 16, "widths": (8,)}, torch.rand(3, 16)),
        ("fc-ladder", {"n_inputs": 16, "widths": (8, 4), "denoising_weights": (1.0, 1.0, 1.0, 1.0)}, torch.rand(3, 16)),
        ("convnet", {"image_size": (20, 20), "channels": (4, 4)}, torch.rand(3, 400)),
    ],
)
def test_zoo_builds_each_model_by_name(name, kwargs, x):
    model = tagmodels.create(name, **kwargs)
    assert isinstance(model, torch.nn.Module) and name in tagmodels.MODELS
    model.eval()
    if name == "tagger":
        assert model(x, groups=2, iterations=1).z[0].shape == (3, 2, 16)
    else:
        probs = model.predict(x)
        assert probs.shape == (3, 10) and torch.allclose(probs.sum(-1), torch.ones(3))


def test_the_benchmark_methods_are_the_zoo_models():
    from tagmodels.benchmark.settings import METHODS

    assert set(METHODS) == set(tagmodels.MODELS)


def test_zoo_names_the_choices_for_an_unknown_model():
    with pytest.raises(tagdata.UserError) as err:
        tagmodels.create("resnet")
    assert "fc-mlp" in str(err.value)


def test_load_run_gives_the_trained_model_in_eval_mode(tmp_path, shapes_file):
    result = CliRunner().invoke(
        tagtool,
        ["train", "--data", str(shapes_file), "--out", str(tmp_path / "run"), "--preset", "shapes-small",
         "--epochs", "1", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    run = tagmodels.load_run(tmp_path / "run", device="cpu")
    assert isinstance(run.model, tagmodels.Tagger) and not run.model.training
    assert len(run.history) == 1 and run.config["model"] == "tagger"
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, saved[name]), name


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


def test_a_regular_install_gives_a_working_tagtool_and_api(tmp_path):
    pytest.importorskip("setuptools")
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "results", "*.egg-info", "demo"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "wheel"), str(source)], cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(name.endswith((".dist-info/licenses/LICENSE", ".dist-info/LICENSE")) for name in names)
    for package in ("tagdata", "tagmodels", "tagtool_cli"):
        assert f"{package}/py.typed" in names
    fresh = tmp_path / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(fresh)])
    python = fresh / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # The dependencies (torch, numpy, h5py...) come from this environment's site-packages,
    # added as a plain path: its editable-install hooks are not run, so the toolkit itself
    # can only come from the wheel.
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    check = (
        "import tagdata, tagmodels, tagtool_cli, importlib.util;"
        "assert all('site-packages' in m.__file__ for m in (tagdata, tagmodels, tagtool_cli));"
        "assert importlib.util.find_spec('cli') is None;"
        "assert set(tagmodels.MODELS) == {'tagger', 'fc-mlp', 'fc-ladder', 'convnet'};"
        "print(tagdata.resolve_spec('texture-mnist2').name)"
    )
    assert _run([str(python), "-c", check], cwd=outside, env=env).stdout.strip() == "texture-mnist2"
    _run([str(fresh / "bin" / "tagtool"), "make-dataset", "shapes", "--train", "20", "--valid", "5", "--test", "5",
          "--single", "0", "--out", "s.h5"], cwd=outside, env=env)
    assert (outside / "s.h5").stat().st_size > 0
