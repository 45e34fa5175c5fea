"""The z read-out's rank (docs/textures.md, "A z read-out of low rank"): each group's z lies in
an R-dimensional subspace, the rest of the model is unchanged, and --resume holds the option."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool

from tagdata.errors import UserError
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.grouping import new_run_config
from tagmodels.training.resume import held_settings


def z_spread_singular_values(z_rank: int | None, norm: str) -> list[torch.Tensor]:
    """Per iteration, the singular values of its z (B * K rows) about their mean (BatchNorm
    rescales each pixel by its own statistics per iteration, so iterations are kept apart)."""
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_inputs=24, input_kind="continuous", widths=(32, 16, 8), norm=norm,
                                noise=0.2, data_mean=0.5, z_rank=z_rank))
    with torch.no_grad():
        for combinator in model.ladder.combinator:  # at their start they pass no signal upwards
            combinator.a.add_(torch.randn_like(combinator.a))
        output = model(torch.rand(40, 24), groups=2, iterations=2)
    rows = [z.reshape(-1, 24) for z in output.z]
    return [torch.linalg.svdvals(r - r.mean(0)) for r in rows]


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_z_lies_in_a_subspace_of_the_chosen_rank(norm):
    for low in z_spread_singular_values(3, norm):
        assert low[2] > 1e-2 and float(low[3:].max()) < 1e-4 * float(low[0])
    for full in z_spread_singular_values(None, norm):
        assert full[3] > 1e-2 * full[0]  # the paper's read-out is not confined


def test_z_rank_is_stored_held_on_resume_and_bad_ranks_are_refused(shapes_file, texture_file, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(tagtool, [
        "train", "--data", str(shapes_file), "--out", str(out), "--preset", "demo", "--epochs", "1", "--quiet",
        "--device", "cpu", "--z-rank", "5"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["tagger"]["z_rank"] == 5 and held_settings(config)["z_rank"] == 5
    refused = CliRunner().invoke(tagtool, ["train", "--out", str(out), "--resume", "--epochs", "2", "--z-rank", "6"])
    assert refused.exit_code == 1 and "--z-rank 6 contradicts" in refused.output
    with pytest.raises(UserError, match="--z-rank must be at least 1"):
        new_run_config("texture-small", str(texture_file), seed=0, device=torch.device("cpu"), z_rank=0)
