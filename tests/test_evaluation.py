"""Table 1a's evaluation: AMI on the clean pass, a denoising cost independent of batch size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tagmodels.metrics import grouping_scores
from tagmodels.tagger import tag
from tagmodels.tagger.evaluation import (
    denoising_cost_per_iteration,
    evaluate_grouping,
    grouping_per_iteration,
    oracle_log_m0,
)
from tagmodels.tagger.model import Tagger, TaggerConfig


class PerExampleCost(torch.nn.Module):
    """A stand-in Tagger whose cost is a known function of each example (its pixel mean)."""

    def forward(self, x, groups, iterations, corrupt=True, log_m0=None):
        per_example = x.mean(dim=1)
        cost = torch.stack([per_example.mean() * (i + 1) for i in range(iterations)])
        log_m = torch.log_softmax(torch.zeros(x.shape[0], groups, x.shape[1]), dim=1)
        return SimpleNamespace(cost=cost, log_m=[log_m] * iterations)


def test_denoising_cost_is_a_per_example_mean_whatever_the_batch_size():
    x = torch.rand(53, 10, generator=torch.Generator().manual_seed(0))
    expected = [x.mean().item() * i for i in (1, 2)]
    for batch_size in (7, 10, 53, 100):
        got = denoising_cost_per_iteration(PerExampleCost(), x, groups=2, iterations=2, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def trained_looking_tagger() -> Tagger:
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_inputs=16, widths=(12, 8), norm="layer"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return model


def test_ami_is_scored_on_the_clean_pass(monkeypatch):
    """The corruption cannot change the AMI, and the AMI equals that of the clean m."""
    model = trained_looking_tagger()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(20, 16, generator=g) < 0.4).float()
    seg = torch.randint(0, 3, (20, 16), generator=g)
    rows = grouping_per_iteration(model, x, seg, groups=3, iterations=2, batch_size=20, seed=5)
    monkeypatch.setattr(tag, "corrupt", lambda x, kind, noise: 1.0 - x)
    assert grouping_per_iteration(model, x, seg, groups=3, iterations=2, batch_size=20, seed=5) == rows
    torch.manual_seed(5)
    clean = model(x, 3, 2, corrupt=False)
    for row, log_m in zip(rows, clean.log_m):
        assert row["ami"] == float(np.nanmean(grouping_scores(seg, log_m)["ami"]))


def test_the_cost_split_is_the_one_given():
    model = trained_looking_tagger()
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(20, 16, generator=g) < 0.4).float()
    other = (torch.rand(30, 16, generator=g) < 0.1).float()
    seg = torch.randint(0, 3, (20, 16), generator=g)
    rows = evaluate_grouping(model, x, seg, 3, 2, cost_x=other)
    assert [r["denoising_cost"] for r in rows] == denoising_cost_per_iteration(model, other, 3, 2)
    assert [r["ami"] for r in rows] == [r["ami"] for r in grouping_per_iteration(model, x, seg, 3, 2)]


def test_an_oracle_start_gives_each_layer_its_own_group_and_leaves_the_rest_uniform():
    segmentation = torch.tensor([[0, 1, 255, 2]])
    m = oracle_log_m0(segmentation, groups=2).exp()
    torch.testing.assert_close(m[0].T, torch.tensor([[0.99, 0.01], [0.01, 0.99], [0.5, 0.5], [0.5, 0.5]]))
    assert torch.allclose(oracle_log_m0(segmentation, groups=3).exp().sum(dim=1), torch.ones(1, 4))


class KeepsItsStart(torch.nn.Module):
    """A stand-in Tagger that returns m^0 unchanged at every iteration."""

    def forward(self, x, groups, iterations, corrupt=True, log_m0=None):
        log_m = log_m0 if log_m0 is not None else torch.log_softmax(torch.randn(x.shape[0], groups, x.shape[1]), dim=1)
        return SimpleNamespace(cost=torch.zeros(iterations), log_m=[log_m] * iterations)


def test_the_oracle_start_reaches_the_model_and_scores_as_the_true_grouping():
    segmentation = torch.tensor([[0, 0, 1, 1, 1, 0, 255, 0]] * 3)
    x = torch.rand(3, 8)
    oracle = grouping_per_iteration(KeepsItsStart(), x, segmentation, 2, 2, log_m0=oracle_log_m0(segmentation, 2))
    random = grouping_per_iteration(KeepsItsStart(), x, segmentation, 2, 2)
    assert [row["ami"] for row in oracle] == [1.0, 1.0] and random[0]["ami"] < 1.0


class TwoKnownGroups(torch.nn.Module):
    """A stand-in Tagger, called on its segmentation's rows in one batch: group 0's z is x on
    layer 1's pixels and 0.9 elsewhere, group 1's z is x + 0.1 everywhere, and m gives every
    pixel to group 0; from the second iteration on the two groups swap their z (m stays)."""

    def __init__(self, segmentation: torch.Tensor) -> None:
        super().__init__()
        self.segmentation = segmentation

    def forward(self, x, groups, iterations, corrupt=True, log_m0=None):
        rows = self.segmentation[: x.shape[0]]
        first = torch.stack([torch.where(rows == 1, x, torch.full_like(x, 0.9)), x + 0.1], dim=1)
        z = [first] + [first.flip(1)] * (iterations - 1)
        to_group_0 = torch.stack([torch.zeros_like(x), torch.full_like(x, -30.0)], dim=1)
        log_m = torch.log_softmax(to_group_0, dim=1)
        return SimpleNamespace(cost=torch.zeros(iterations), log_m=[log_m] * iterations, z=z)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # the AMI of an image with one true layer is undefined
def test_layer_rms_takes_the_best_group_per_layer_and_the_owner_per_pixel():
    segmentation = torch.tensor([[0, 0, 1, 1, 255, 0], [0, 1, 1, 1, 0, 255], [0, 0, 0, 0, 0, 0]])
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
    model = TwoKnownGroups(segmentation)
    rows = grouping_per_iteration(model, x, segmentation, groups=2, iterations=2, batch_size=3, layer_rms=True)
    first, second = (row["layer_rms"] for row in rows)
    for row in (first, second):  # the best group, whichever of the two holds which z
        assert row["best_group"][0] == pytest.approx(0.1, rel=1e-5)  # x + 0.1 beats 0.9 on the background
        assert row["best_group"][1] == pytest.approx(0.0, abs=1e-7)  # group 0 or 1 holds layer 1 exactly
    # the owner is group 0 everywhere: at first exact on layer 1 and 0.9 on the background, then x + 0.1
    background = segmentation == 0
    per_example = [((0.9 - x[b][background[b]]) ** 2).mean() for b in range(3)]
    assert first["owner"][0] == pytest.approx(float(torch.stack(per_example).mean().sqrt()), rel=1e-5)
    assert first["owner"][1] == pytest.approx(0.0, abs=1e-7)
    assert second["owner"] == [pytest.approx(0.1, rel=1e-5)] * 2
    # the third example has no layer-1 pixel: that layer's rms is over the other two only
    only_background = grouping_per_iteration(TwoKnownGroups(segmentation[2:]), x[2:], segmentation[2:], 2, 1,
                                             layer_rms=True)
    assert [row["layer_rms"] for row in only_background] == [{"best_group": [pytest.approx(0.1, rel=1e-5)], "owner": [
        pytest.approx(float(((0.9 - x[2]) ** 2).mean().sqrt()), rel=1e-5)]}]
    assert "layer_rms" not in grouping_per_iteration(model, x, segmentation, 2, 1, batch_size=3)[0]  # only when asked
