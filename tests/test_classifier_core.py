"""What the Table 2 classifiers read and from where, checked by hand (Section 3.3; Rasmus et al.).

- the FC Tagger's prediction and its classification cost come from the Ladder top of the
  *last* iteration (the release: the class cost from the last iteration);
- the FC Tagger predicts on clean input in validation and test (Section 3.1: "classification
  results ... were performed using uncorrupted input") and trains on corrupted input;
- the FC Ladder's denoising targets are the clean pass's normalised pre-activations z_l
  (Rasmus et al., equation 3 and Algorithm 1), the input itself at the bottom; its noisy
  pass adds the noise to the input and to each normalised pre-activation;
- the baselines' BatchNorm normalises with batch statistics in training and with the
  statistics collected in training at evaluation, so a test prediction is per example.
"""

from __future__ import annotations

import pytest
import torch

from tagmodels.baselines.classifiers import FCMLP, ModelC
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.benchmark.settings import get_scale
from tagmodels.metrics import mixture_targets
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.training.classification import ClassificationObjective, classification_error
from tagmodels.training.data import SplitTensors

N = 36  # 6x6 images


def data(n: int, digits: int = 1, seed: int = 0, side: int = 6) -> SplitTensors:
    g = torch.Generator().manual_seed(seed)
    return SplitTensors(
        kind="texture-mnist",
        images=torch.rand(n, 1, side, side, generator=g),
        segmentation=torch.zeros(n, side * side, dtype=torch.uint8),
        labels=torch.randint(0, 10, (n, digits), generator=g),
    )


def tagger_classifier(iterations: int = 3) -> TaggerClassifier:
    torch.manual_seed(0)
    config = TaggerConfig(n_inputs=N, input_kind="continuous", widths=(12, 8, 6), data_mean=0.5, gate_sigmoid=True)
    model = TaggerClassifier(Tagger(config), (8, 6), groups=3, iterations=iterations)
    with torch.no_grad():  # a trained-looking network: the top changes from iteration to iteration
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    return model


def record_tops(model: TaggerClassifier) -> list[torch.Tensor]:
    """The Ladder's top logits (B, K, 11) of every iteration, in order."""
    tops: list[torch.Tensor] = []

    def keep(module, args, out) -> None:
        tops.append(out.top_logits.detach().view(-1, model.groups, out.top_logits.shape[-1]))

    model.tagger.ladder.register_forward_hook(keep)
    return tops


def hand_prediction(top_logits: torch.Tensor) -> torch.Tensor:
    """Section 3.3: per group a softmax over 10 digits + 'no class'; sum the 10 digit
    probabilities over groups and renormalise."""
    digits = torch.softmax(top_logits, dim=-1)[..., :10].sum(dim=1)
    return digits / digits.sum(dim=-1, keepdim=True)


def test_tagger_classifier_predicts_from_the_last_iterations_top():
    """The prediction is the group sum of the softmax heads of the last iteration's top."""
    model = tagger_classifier(iterations=3).eval()
    tops = record_tops(model)
    x = data(5).x
    prediction = model.predict(x)
    assert len(tops) == 3
    torch.testing.assert_close(prediction, hand_prediction(tops[-1]))
    assert not torch.allclose(prediction, hand_prediction(tops[0]), atol=1e-3)


def test_tagger_classification_cost_reads_the_last_iterations_top_of_the_labelled_rows():
    """Denoising cost (mean over iterations) + 0.1 x cross-entropy of the labelled rows'
    prediction from the last iteration (the release computes the class cost there)."""
    model = tagger_classifier(iterations=3)
    tops = record_tops(model)
    batch = data(6, digits=2)
    targets = torch.from_numpy(mixture_targets(batch.labels[:4]))
    torch.manual_seed(4)
    cost = model.cost(batch.x, targets)
    torch.manual_seed(4)
    denoising = model.tagger.training_cost(model.tagger(batch.x, 3, 3, corrupt=True))
    classification = -(targets * torch.log(hand_prediction(tops[2][:4]))).sum(-1).mean()
    torch.testing.assert_close(cost, denoising + 0.1 * classification)


def seen_inputs(model: TaggerClassifier, run) -> list[torch.Tensor]:
    """x~ as each forward pass's first iteration saw it: z^0 is the data mean there, so
    delta z = m^0 (x~ - z^0) gives x~ = delta z / m^0 + z^0 (equation 4)."""
    firsts: list[torch.Tensor] = []
    calls = [0]
    n, k = N, model.groups

    def keep(module, args) -> None:
        if calls[0] % model.iterations == 0:
            blocks = args[0].detach().view(-1, k, 4, n)
            z0, delta_z, m0 = blocks[:, 0, 0], blocks[:, 0, 1], blocks[:, 0, 2]
            firsts.append(delta_z / m0 + z0)
        calls[0] += 1

    handle = model.tagger.input_map.register_forward_pre_hook(keep)
    run()
    handle.remove()
    return firsts


def test_tagger_classifier_is_scored_on_clean_input_in_validation_and_test():
    """Validation (the objective's valid_error) and test (classification_error) both run the
    network on the uncorrupted images."""
    model = tagger_classifier(iterations=2)
    valid, test = data(7, seed=1), data(5, seed=2)
    objective = ClassificationObjective(model, data(4), None, valid, batch_size=4)
    seen = seen_inputs(model, objective.validate)
    torch.testing.assert_close(torch.cat(seen), valid.x, rtol=1e-4, atol=1e-4)
    seen = seen_inputs(model, lambda: classification_error(model, test, batch_size=5))
    torch.testing.assert_close(torch.cat(seen), test.x, rtol=1e-4, atol=1e-4)


def test_tagger_classifier_trains_on_corrupted_input():
    """The supervised phase's cost sees x~ = x + N(0, sigma^2), sigma the supervised noise."""
    model = tagger_classifier(iterations=2)
    batch = data(20)
    targets = torch.from_numpy(mixture_targets(batch.labels))
    (seen,) = seen_inputs(model, lambda: model.cost(batch.x, targets))
    noise = (seen - batch.x).std().item()
    assert noise == pytest.approx(model.tagger.config.noise, rel=0.15)


def test_fc_ladder_denoising_targets_are_the_clean_normalised_pre_activations():
    """Rasmus et al.: C_d = sum_l lambda_l |z^_l - z_l|^2 / width, z_l = BN(W_l h_{l-1}) of the
    clean pass (batch statistics; before bias and ReLU), z_0 the clean input."""
    torch.manual_seed(0)
    model = FCLadder(N, [12, 10, 8, 8, 6])
    with torch.no_grad():
        for affine in model.ladder.encoder_affine:
            affine.bias.normal_()
    batch = data(16, digits=2)
    targets = torch.from_numpy(mixture_targets(batch.labels[:5]))
    x = batch.x
    torch.manual_seed(2)
    cost = model.cost(x, targets)
    torch.manual_seed(2)
    noisy = model.ladder(x, 0.3)
    h, clean = x, [x]
    for layer in range(model.ladder.depth):
        pre = h @ model.ladder.encoder[layer].weight.T
        z = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + 1e-5)
        clean.append(z)
        h = torch.relu(z + model.ladder.encoder_affine[layer].bias)
    supervised = -(targets * torch.log_softmax(noisy.top_logits[:5], dim=-1)).sum(-1).mean()
    weights = (1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1)
    denoising = sum(w * ((r - z) ** 2).mean() for w, r, z in zip(weights, noisy.reconstruction, clean))
    torch.testing.assert_close(cost, supervised + denoising, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["fc-mlp", "fc-ladder", "convnet"])
def test_baseline_batchnorm_uses_batch_statistics_in_training_and_collected_ones_at_evaluation(method):
    torch.manual_seed(0)
    side = 12 if method == "convnet" else 6  # Model C needs 12x12 at least
    model = {
        "fc-mlp": lambda: FCMLP(N, [12, 12]),
        "fc-ladder": lambda: FCLadder(N, [12, 10, 8, 8, 6]),
        "convnet": lambda: ModelC((side, side), (4, 4)),
    }[method]()
    train = data(16, side=side)
    targets = torch.from_numpy(mixture_targets(train.labels))
    for _ in range(3):  # training-mode passes collect the statistics
        model.cost(train.x, targets)
    x = data(6, seed=3, side=side).x
    model.eval()
    together = model.predict(x)
    torch.testing.assert_close(model.predict(x[:2]), together[:2])  # per example at evaluation
    model.train()
    with torch.no_grad():
        if method == "fc-ladder":
            assert not torch.allclose(model.ladder(x[:2]).top, model.ladder(x).top[:2])
        else:
            assert not torch.allclose(model.predict(x[:2]), model.predict(x)[:2])  # batch statistics in training


def test_growing_keeps_the_trained_network_and_adds_fresh_layers_at_their_initial_values():
    """Section 3.3: the unsupervised phase's weights carry over; the two fresh layers and the
    11-unit top start as any fresh layer does (biases 0, c = 1, a2 = a7 = 1, the rest 0)."""
    torch.manual_seed(0)
    tagger = Tagger(TaggerConfig(n_inputs=N, input_kind="continuous", widths=(12, 8, 6), data_mean=0.5))
    with torch.no_grad():
        for parameter in tagger.parameters():
            parameter.add_(torch.randn_like(parameter))
    trained = {name: p.detach().clone() for name, p in tagger.named_parameters() if name != "ladder.top_scale"}
    ladder = TaggerClassifier(tagger, (8, 6)).tagger.ladder
    now = dict(tagger.named_parameters())
    for name, value in trained.items():
        assert torch.equal(now[name], value), name
    assert ladder.widths == [12, 8, 6, 8, 6, 11]
    fresh_a = torch.zeros(10, 1)
    fresh_a[[1, 6]] = 1.0
    for level in (3, 4, 5):
        assert torch.all(ladder.encoder_affine[level - 1].bias == 0)
        assert torch.equal(ladder.combinator[level].a.detach(), fresh_a.expand(10, ladder.widths[level]))
    assert torch.all(ladder.top_scale == 1)


def test_the_supervised_phase_keeps_the_papers_and_the_releases_settings():
    """Table 2's widths end 500-250 and the 11-unit head (two fresh layers, Section 3.3), K = 4
    groups; the release's runner: class cost weight 0.1, noise 0.18, 4 iterations."""
    torch.manual_seed(0)
    tagger = Tagger(TaggerConfig(n_inputs=N, input_kind="continuous", widths=(12, 8, 6), data_mean=0.5))
    model = TaggerClassifier(tagger)
    assert model.tagger.ladder.widths[-3:] == [500, 250, 11]
    assert (model.classification_weight, model.tagger.config.noise, model.iterations, model.groups) == (0.1, 0.18, 4, 4)


def test_fc_ladder_noisy_encoder_adds_noise_to_the_input_and_each_normalised_pre_activation():
    """Rasmus et al., Algorithm 1: x~ = x + noise, z~_l = BN(W_l h~_{l-1}) + noise, and the
    noisy z~_l goes both sideways (to the combinator) and upwards (h~_l = ReLU(z~_l + b_l))."""
    torch.manual_seed(0)
    model = FCLadder(N, [30, 30, 30, 30, 30])
    x = data(200).x
    combinator_inputs = []
    for combinator in model.ladder.combinator:
        combinator.register_forward_hook(lambda mod, args, out: combinator_inputs.append(args[0]))
    with torch.no_grad():
        out = model.ladder(x, 0.3)
    assert (out.lateral[0] - x).std().item() == pytest.approx(0.3, rel=0.05)
    h = out.lateral[0]
    for layer in range(model.ladder.depth):
        pre = h @ model.ladder.encoder[layer].weight.T
        clean = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + 1e-5)
        assert (out.lateral[layer + 1] - clean).std().item() == pytest.approx(0.3, rel=0.1)
        h = torch.relu(out.lateral[layer + 1] + model.ladder.encoder_affine[layer].bias)
    # the decoder runs top-down: combinator L first, combinator 0 last
    for got, lateral in zip(reversed(combinator_inputs), out.lateral):
        assert torch.equal(got, lateral)


def test_the_paper_scale_of_table_2_holds_the_papers_models():
    """Section 3.3 and Table 2: FC MLP 2000-2000-2000 (1000-1000 with 1k labels); FC Ladder
    3000-2000-1000-500-250 with Rasmus et al.'s noise 0.3 and denoising weights for each label
    budget; Model C with
    96 and 192 channels; FC Tagger: texture-paper's 150 unsupervised epochs, then 50 with two
    fresh layers 500-250, K = 4, and the release's 4 iterations, noise 0.18, weight 0.1, lr 0.0002."""
    paper = get_scale("paper")
    assert paper.settings("fc-mlp", "50000")["widths"] == [2000, 2000, 2000]
    assert paper.settings("fc-mlp", "1000")["widths"] == [1000, 1000]
    weights = {"50000": [1000.0, 1.0, 0.01, 0.01, 0.01, 0.01, 0.01], "1000": [1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1]}
    for budget in ("50000", "1000"):
        ladder = paper.settings("fc-ladder", budget)
        assert ladder["widths"] == [3000, 2000, 1000, 500, 250] and ladder["noise_std"] == 0.3
        assert ladder["denoising_weights"] == weights[budget]
        assert paper.settings("convnet", budget)["channels"] == [96, 192]
        tagger = paper.settings("tagger", budget)
        assert tagger["fresh_widths"] == [500, 250] and tagger["epochs"] == 50
        assert {key: tagger[key] for key in ("groups", "iterations", "noise", "classification_weight", "lr")} == {
            "groups": 4, "iterations": 4, "noise": 0.18, "classification_weight": 0.1, "lr": 2e-4}
    assert paper.tagger_preset == "texture-paper" and not paper.tagger_overrides
