"""The four Table 2 classifiers: heads, costs, the label budgets and test-error scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tagmodels.baselines.classifiers import FCMLP, ModelC, mixture_cross_entropy
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.benchmark.label_budget import labelled_subset
from tagmodels.benchmark.permutation import permute_split, pixel_permutation
from tagmodels.metrics import mixture_targets
from tagmodels.tagger.classifier import (
    HEAD_UNITS,
    TaggerClassifier,
    group_log_prediction,
)
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.classification import (
    ClassificationObjective,
    classification_error,
    example_errors,
)
from tagmodels.training.data import SplitTensors

N = 144  # 12x12 images keep every model tiny (and still fit Model C)


def small_tagger() -> Tagger:
    config = TaggerConfig(n_inputs=N, input_kind="continuous", widths=(12, 8, 6), data_mean=0.5, gate_sigmoid=True)
    return Tagger(config)


def split(n: int, digits: int = 1, seed: int = 0) -> SplitTensors:
    g = torch.Generator().manual_seed(seed)
    return SplitTensors(
        kind="texture-mnist",
        images=torch.rand(n, 1, 12, 12, generator=g),
        segmentation=torch.randint(0, 3, (n, N), generator=g, dtype=torch.uint8),
        labels=torch.randint(0, 10, (n, digits), generator=g),
    )


def all_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "fc-mlp": FCMLP(N, [16, 16]),
        "convnet": ModelC((12, 12), (4, 6)),
        "fc-ladder": FCLadder(N, [16, 12, 10, 8, 6]),
        "tagger": TaggerClassifier(small_tagger(), (8, 6)),
    }


# ---------------------------------------------------------------------------- heads


def test_mixture_cross_entropy_of_two_digits_is_mean_of_both_log_probabilities():
    log_probs = torch.log_softmax(torch.randn(3, 10), dim=-1)
    targets = torch.from_numpy(mixture_targets(np.array([[1, 4], [2, 2], [0, 9]])))
    expected = -torch.stack([
        (log_probs[0, 1] + log_probs[0, 4]) / 2, log_probs[1, 2], (log_probs[2, 0] + log_probs[2, 9]) / 2,
    ]).mean()
    torch.testing.assert_close(mixture_cross_entropy(log_probs, targets), expected)


@pytest.mark.parametrize("method", ["fc-mlp", "convnet", "fc-ladder", "tagger"])
def test_every_classifier_predicts_distributions_and_learns_a_batch(method):
    model = all_models()[method]
    data = split(20)
    targets = torch.from_numpy(mixture_targets(data.labels))
    model.eval()
    probs = model.predict(data.x)
    assert probs.shape == (20, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(20))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    first = model.cost(data.x, targets)
    for _ in range(15):
        optimizer.zero_grad()
        cost = model.cost(data.x, targets)
        cost.backward()
        optimizer.step()
    torch.manual_seed(1)
    assert model.cost(data.x, targets).item() < first.item()


@pytest.mark.parametrize("model", [FCMLP(N, [8]), ModelC((12, 12), (4, 4))], ids=["mlp", "convnet"])
def test_label_only_models_cost_is_cross_entropy_of_the_labelled_rows(model):
    data = split(10)
    targets = torch.from_numpy(mixture_targets(data.labels[:4]))
    model.eval()  # fixed normalisation statistics, so that rows do not interact
    expected = mixture_cross_entropy(torch.log_softmax(model.logits(data.x[:4]), dim=-1), targets)
    torch.testing.assert_close(model.cost(data.x, targets), expected)
    assert not model.uses_unlabelled


def test_convnet_sees_pixel_order_but_mlp_does_not():
    """A fixed permutation is a relabelling of an MLP's inputs, not of a ConvNet's."""
    torch.manual_seed(0)
    data = split(6)
    perm = pixel_permutation(N, seed=3)
    permuted = permute_split(data, perm)
    mlp = FCMLP(N, [8]).eval()
    moved = FCMLP(N, [8]).eval()
    moved.load_state_dict(mlp.state_dict())
    with torch.no_grad():  # permute the first layer's input weights the same way
        moved.hidden[0].weight.copy_(mlp.hidden[0].weight[:, perm])
    torch.testing.assert_close(moved.predict(permuted.x), mlp.predict(data.x))
    conv = ModelC((12, 12), (4, 4)).eval()
    assert not torch.allclose(conv.predict(permuted.x), conv.predict(data.x))
    torch.testing.assert_close(permuted.x[:, 5], data.x[:, perm[5]])
    torch.testing.assert_close(permuted.segmentation[:, 5], data.segmentation[:, perm[5]])


def test_group_prediction_sums_digit_probabilities_over_groups_and_renormalises():
    head = torch.randn(2, 3, HEAD_UNITS)
    p = torch.softmax(head, dim=-1)
    digits = p[..., :10].sum(dim=1)
    torch.testing.assert_close(group_log_prediction(head).exp(), digits / digits.sum(dim=-1, keepdim=True))
    # One group says "2", one "7", the rest "no class": the prediction is 2 and 7, half each.
    head = torch.full((1, 4, HEAD_UNITS), -50.0)
    head[0, 0, 2] = head[0, 1, 7] = head[0, 2, 10] = head[0, 3, 10] = 50.0
    expected = torch.zeros(1, 10)
    expected[0, 2] = expected[0, 7] = 0.5
    torch.testing.assert_close(group_log_prediction(head).exp(), expected)


def test_tagger_head_grows_two_fresh_layers_and_an_11_unit_softmax_top():
    tagger = small_tagger()
    model = TaggerClassifier(tagger, (8, 6), noise=0.18)
    assert model.tagger.ladder.widths == [12, 8, 6, 8, 6, HEAD_UNITS]
    assert model.tagger.ladder.top_activation == "softmax"
    assert model.tagger.ladder.top_scale.shape == (HEAD_UNITS,)  # a fresh c for the fresh top
    assert model.tagger.config.noise == 0.18
    out = model.tagger(split(5).x, groups=4, iterations=2)
    assert out.top_logits.shape == (5, 4, HEAD_UNITS)
    assert (out.top_logits < 0).any()  # logits, not ReLU


def test_tagger_cost_is_denoising_plus_tenth_of_last_iteration_classification():
    torch.manual_seed(0)
    model = TaggerClassifier(small_tagger(), (8, 6), groups=3, iterations=2)
    data = split(6, digits=2)
    targets = torch.from_numpy(mixture_targets(data.labels[:4]))
    torch.manual_seed(5)
    cost = model.cost(data.x, targets)
    torch.manual_seed(5)
    out = model.tagger(data.x, 3, 2, corrupt=True)
    classification = mixture_cross_entropy(group_log_prediction(out.top_logits[:4]), targets)
    torch.testing.assert_close(cost, model.tagger.training_cost(out) + 0.1 * classification)
    assert model.uses_unlabelled


def test_ladder_cost_is_noisy_supervised_plus_weighted_denoising_of_every_layer():
    torch.manual_seed(0)
    model = FCLadder(N, [16, 12, 10, 8, 6])
    data = split(8)
    targets = torch.from_numpy(mixture_targets(data.labels[:3]))
    torch.manual_seed(2)
    cost = model.cost(data.x, targets)
    torch.manual_seed(2)
    noisy = model.ladder(data.x, 0.3)
    clean = model.ladder(data.x)
    supervised = mixture_cross_entropy(torch.log_softmax(noisy.top_logits[:3], dim=-1), targets)
    paper_weights = (1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1)  # Rasmus et al.'s, input layer first
    assert tuple(model.denoising_weights) == paper_weights
    layers = [w * ((r - z) ** 2).mean() for w, r, z in zip(paper_weights, noisy.reconstruction, clean.lateral)]
    assert len(layers) == 7
    torch.testing.assert_close(cost, supervised + sum(layers))


def test_ladder_running_statistics_come_from_the_clean_pass_only():
    torch.manual_seed(0)
    model = FCLadder(N, [16, 12, 10, 8, 6])
    data = split(32)
    model.cost(data.x, torch.from_numpy(mixture_targets(data.labels)))
    norm = model.ladder.encoder_norm[0]
    clean_pre = model.ladder.encoder[0](data.x).detach()
    momentum = norm.momentum
    torch.testing.assert_close(norm.running_mean, momentum * clean_pre.mean(dim=0))
    assert norm.num_batches_tracked.item() == 1


# ---------------------------------------------------------------------------- label budgets


def test_thousand_labels_are_100_per_class_and_depend_on_the_seed():
    labels = torch.arange(3000).remainder(10).unsqueeze(1)
    chosen = labelled_subset(labels, "1000", seed=0)
    assert len(chosen) == 1000 and len(set(chosen.tolist())) == 1000
    assert torch.bincount(labels[chosen, 0], minlength=10).tolist() == [100] * 10
    assert torch.equal(chosen, labelled_subset(labels, "1000", seed=0))
    assert not torch.equal(chosen, labelled_subset(labels, "1000", seed=1))
    assert labelled_subset(labels, "50000", seed=0) is None


def test_thousand_labels_of_two_digit_data_are_100_per_bottom_digit():
    labels = torch.randint(0, 10, (1500, 2), generator=torch.Generator().manual_seed(0))
    chosen = labelled_subset(labels, "1000", seed=4)
    assert len(set(chosen.tolist())) == 1000 and chosen.max() < 1500
    assert torch.bincount(labels[chosen, 0], minlength=10).tolist() == [100] * 10


def test_too_few_examples_of_a_digit_is_a_user_error():
    from tagdata.errors import UserError

    labels = torch.zeros(2000, 1, dtype=torch.long)
    with pytest.raises(UserError, match="digit 1 at the bottom"):
        labelled_subset(labels, "1000", seed=0)


def test_semi_supervised_step_stacks_a_labelled_batch_drawn_from_the_generator():
    data = split(40)
    labelled = torch.tensor([3, 7, 11, 19])
    seen = {}

    class Recorder(torch.nn.Module):
        uses_unlabelled = True

        def cost(self, x, targets):
            seen["x"], seen["targets"] = x, targets
            return x.sum()

    objective = ClassificationObjective(Recorder(), data, labelled, data, batch_size=5)
    assert objective.n_train == 40
    batch = torch.tensor([0, 1, 2, 30, 31])
    objective.cost(objective.model, *objective.inputs(batch, torch.Generator().manual_seed(0)))
    draw = labelled[torch.randint(4, (5,), generator=torch.Generator().manual_seed(0))]
    torch.testing.assert_close(seen["x"], torch.cat([data.x[draw], data.x[batch]]))
    torch.testing.assert_close(seen["targets"], torch.from_numpy(mixture_targets(data.labels[draw])))

    Recorder.uses_unlabelled = False  # a label-only model trains on the labelled rows alone
    objective = ClassificationObjective(Recorder(), data, labelled, data, batch_size=5)
    assert objective.n_train == 4
    objective.cost(objective.model, *objective.inputs(torch.tensor([2, 0]), torch.Generator()))
    torch.testing.assert_close(seen["x"], data.x[labelled[[2, 0]]])


# ---------------------------------------------------------------------------- scoring


class FixedScores(torch.nn.Module):
    """A 'model' whose predictions are given rows of scores, in order."""

    def __init__(self, scores: list[list[float]]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)
        self.next = 0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.scores[self.next : self.next + len(x)]
        self.next += len(x)
        return rows


def scores_for(*top: int) -> list[float]:
    """Scores ranking the given classes first, in that order."""
    row = [0.0] * 10
    for rank, cls in enumerate(top):
        row[cls] = 1.0 - 0.1 * rank
    return row


def test_two_digit_error_is_top2_with_equal_digits_judged_by_top1():
    cases = [
        ([3, 5], scores_for(5, 3), 0.0),  # both found, in any order
        ([3, 5], scores_for(3, 9), 0.5),  # one of two found
        ([3, 5], scores_for(1, 2), 1.0),  # none found
        ([4, 4], scores_for(4, 1), 0.0),  # equal digits: right iff top-1 is that digit
        ([4, 4], scores_for(1, 4), 1.0),  # ... in the top two is not enough
    ]
    labels = torch.tensor([c[0] for c in cases])
    model = FixedScores([c[1] for c in cases])
    data = SplitTensors("texture-mnist", torch.zeros(5, 1, 1, 1), torch.zeros(5, 1), labels)
    np.testing.assert_array_equal(example_errors(model.scores, labels), [c[2] for c in cases])
    assert classification_error(model, data, batch_size=2) == pytest.approx(100 * 2.5 / 5)


def test_one_digit_error_is_top1():
    labels = torch.tensor([[3], [5], [0]])
    model = FixedScores([scores_for(3, 1), scores_for(1, 5), scores_for(0)])
    data = SplitTensors("texture-mnist", torch.zeros(3, 1, 1, 1), torch.zeros(3, 1), labels)
    assert classification_error(model, data) == pytest.approx(100 / 3)


def test_evaluation_is_deterministic_and_leaves_training_mode():
    model = all_models()["tagger"]
    data = split(12)
    model.train()
    first = classification_error(model, data, batch_size=5)
    assert model.training
    assert classification_error(model, data, batch_size=5) == first
    assert 0.0 <= first <= 100.0 and math.isfinite(first)
