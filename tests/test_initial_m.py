"""m^0's options (docs/textures.md, "symmetry"): the paper's per-element N(0, 1) logits by
default, a scale and a spatial blur that reach the model and are held on --resume."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

from tagdata.errors import UserError
from tagmodels.tagger import tag
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.grouping import new_run_config
from tagmodels.training.resume import held_settings


def neighbour_correlation(logits: torch.Tensor, side: int) -> float:
    grid = logits.reshape(-1, side, side)
    return float((grid[:, :, 1:] * grid[:, :, :-1]).mean() / grid.var())


def test_default_m0_is_the_papers_per_pixel_softmax_of_unit_normals():
    config = TaggerConfig(n_inputs=16, input_kind="continuous", widths=(8, 4, 2), norm="layer", data_mean=0.5)
    model = Tagger(config)
    torch.manual_seed(3)
    _, log_m0 = model.initial_state(5, 3, torch.zeros(5, 16))
    torch.manual_seed(3)
    expected = torch.log_softmax(torch.randn(5, 3, 16), dim=1)
    assert torch.allclose(log_m0, expected)


def test_scale_multiplies_and_smoothing_correlates_neighbours_at_unit_variance():
    torch.manual_seed(0)
    noise = torch.randn(32, 2, 28 * 28)
    assert torch.equal(tag.initial_m_logits(noise, 3.0, 0.0), 3.0 * noise)
    smooth = tag.initial_m_logits(noise, 1.0, 3.0)
    assert neighbour_correlation(noise, 28) < 0.05
    assert neighbour_correlation(smooth, 28) > 0.9
    assert 0.9 < float(smooth.reshape(32, 2, 28, 28)[..., 8:20, 8:20].std()) < 1.1  # away from the border
    with pytest.raises(ValueError, match="square image"):
        tag.initial_m_logits(torch.randn(2, 2, 30), 1.0, 1.0)


def test_bad_m0_options_are_refused(texture_file):
    for option, value in (("m0_scale", 0.0), ("m0_smoothing", -1.0)):
        with pytest.raises(UserError, match="--" + option.replace("_", "-")):
            new_run_config("texture-small", str(texture_file), seed=0, device=torch.device("cpu"), **{option: value})


def test_m0_options_reach_the_model_and_resume_holds_them(shapes_file, tmp_path):
    out = tmp_path / "run"
    invoke = CliRunner().invoke
    args = ["train", "--data", str(shapes_file), "--out", str(out), "--preset", "demo", "--epochs", "1", "--quiet",
            "--device", "cpu", "--m0-scale", "2.5", "--m0-smoothing", "1.5"]
    result = invoke(tagtool, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["tagger"]["m0_scale"], config["tagger"]["m0_smoothing"]) == (2.5, 1.5)
    assert (held_settings(config)["m0_scale"], held_settings(config)["m0_smoothing"]) == (2.5, 1.5)
    refused = invoke(tagtool, ["train", "--out", str(out), "--resume", "--epochs", "2", "--m0-smoothing", "0"])
    assert refused.exit_code == 1 and "--m0-smoothing 0.0 contradicts" in refused.output


def test_an_oracle_training_start_feeds_the_true_grouping_and_resume_holds_it(texture_file, tmp_path, monkeypatch):
    from tagmodels.tagger.evaluation import oracle_log_m0
    from tagmodels.training import grouping

    seen: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    cost = grouping.GroupingObjective.cost

    def recording(self, model, x, log_m0=None):
        seen.append((x, log_m0))
        return cost(self, model, x, log_m0)

    monkeypatch.setattr(grouping.GroupingObjective, "cost", recording)
    out = tmp_path / "run"
    args = ["train", "--data", str(texture_file), "--out", str(out), "--preset", "texture-small", "--epochs", "1",
            "--quiet", "--device", "cpu", "--groups", "2", "--batch-size", "10", "--initial-m", "oracle"]
    result = CliRunner().invoke(tagtool, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["initial_m"] == "oracle" and held_settings(config)["initial_m"] == "oracle"
    objective = grouping.grouping_objectives([config], torch.device("cpu"))[0]
    assert seen and all(log_m0 is not None for _, log_m0 in seen)
    x, log_m0 = seen[0]
    row = next(i for i in range(len(objective.x)) if torch.equal(objective.x[i], x[0]))
    assert torch.equal(log_m0[0], oracle_log_m0(objective.segmentation[row : row + 1], 2)[0])
    refused = CliRunner().invoke(tagtool, ["train", "--out", str(out), "--resume", "--epochs", "2",
                                           "--initial-m", "random"])
    assert refused.exit_code == 1 and "--initial-m random contradicts" in refused.output
