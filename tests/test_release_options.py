"""The 2016 release's remaining details as named options (issue 17, part 1): each reaches the
model (a property only its code has, computed by hand where possible) and --resume holds it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from tagtool_cli.main import tagtool
from tagtool_cli.model_commands import RESUME_OPTIONS, train
from torch import nn

from tagdata.errors import UserError
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.benchmark.grid import Benchmark, build_classifier
from tagmodels.benchmark.settings import Choices, get_scale, parse_settings
from tagmodels.tagger import tag
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.tagger.tag_names import RELEASE_INITIAL_VARIANCE
from tagmodels.training.data import SplitTensors
from tagmodels.training.grouping import new_run_config
from tagmodels.training.resume import held_settings
from tagmodels.loading import load_run

# Each Tagger option with the 2016 release's value, its --option and a value the release does not use.
RELEASE = {"variance_map": "exp-asinh", "likelihood_variance": "v-squared", "m_floor": 1e-5,
           "norm_epsilon": 1e-10, "tag_norm": "batch"}
OTHER = {"variance_map": "softplus", "likelihood_variance": "v", "m_floor": 0.0,
         "norm_epsilon": 1e-5, "tag_norm": "layer"}


def continuous_tagger(**options) -> Tagger:
    """A small continuous Tagger whose combinators pass signal (at their start they output 0,
    so z and m would be the same for every group)."""
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_inputs=6, input_kind="continuous", widths=(12, 8, 4), norm="layer",
                                noise=0.1, data_mean=0.5, **options))
    with torch.no_grad():
        for combinator in model.ladder.combinator:
            combinator.a.add_(torch.randn_like(combinator.a))
    return model


def network_inputs(model: Tagger, x: torch.Tensor, iterations: int) -> list[torch.Tensor]:
    """[z_k, delta z_k, m_k, L(m_k)] (B * K, 4N) as the network received them, per iteration."""
    seen: list[torch.Tensor] = []
    handle = model.input_map.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(x, groups=3, iterations=iterations, corrupt=False)
    handle.remove()
    return seen


def test_every_held_setting_is_a_train_option_that_resume_compares():
    parameters = {param.name for param in train.params}
    config = {"data": "d.h5", "preset": "p", "training": {}}
    assert set(held_settings(config)) <= set(RESUME_OPTIONS)
    assert set(RESUME_OPTIONS.values()) <= parameters


def test_exp_asinh_variance_by_hand_and_from_p_equal_one():
    p = torch.tensor([1.0, -1.0, -1000.0])
    v = tag.variance(p, "exp-asinh")
    # p + sqrt(p^2 + 1): 1 + sqrt 2, sqrt 2 - 1 and 1 / (sqrt(10^6 + 1) + 1000) ~ 1 / 2000, where softplus is 0.
    expected = torch.tensor([1 + math.sqrt(2), math.sqrt(2) - 1, 1 / (math.sqrt(1e6 + 1) + 1000)])
    assert torch.allclose(v, expected, rtol=1e-6)
    assert tag.variance(p, "softplus")[2] == 0.0
    model = continuous_tagger(variance_map="exp-asinh", initial_variance=RELEASE_INITIAL_VARIANCE)
    assert model.v_raw.item() == pytest.approx(1.0, abs=1e-6)
    model.variance.backward()
    # dv/dp = exp(asinh p) / sqrt(p^2 + 1) = (1 + sqrt 2) / sqrt 2 at p = 1; softplus' slope is below 1.
    assert model.v_raw.grad.item() == pytest.approx((1 + math.sqrt(2)) / math.sqrt(2), rel=1e-5)
    assert continuous_tagger(initial_variance=0.3).variance.item() == pytest.approx(0.3, rel=1e-5)


def test_likelihood_variance_by_hand():
    x_tilde, z, log_m = torch.zeros(1, 1), torch.tensor([[[0.0], [1.0]]]), torch.full((1, 2, 1), math.log(0.5))
    v = torch.tensor(0.5)
    for form, variance in (("v", 0.25 + 0.5), ("v-squared", 0.25 + 0.25)):
        delta_z, likelihood = tag.delta_z_and_likelihood("continuous", x_tilde, z, log_m, 0.5, v,
                                                         likelihood_variance=form)
        assert likelihood[0, 0, 0].item() == pytest.approx(1 / (1 + math.exp(-1 / (2 * variance))))
        assert delta_z.flatten().tolist() == [0.0, -0.5]  # equation (4) either way


@pytest.mark.parametrize("form", ["v", "v-squared"])
def test_likelihood_variance_reaches_the_network(form):
    model = continuous_tagger(likelihood_variance=form, initial_variance=0.2)
    x = torch.rand(2, 6)
    second = network_inputs(model, x, iterations=2)[1].view(2, 3, 4, 6)
    z, likelihood = second[:, :, 0], second[:, :, 3]
    assert z.std(dim=1).min() > 0.01  # the groups differ, so L(m) is not uniform
    v = model.variance.detach()
    variance = 0.1**2 + (v**2 if form == "v-squared" else v)
    expected = torch.softmax(-((x.unsqueeze(1) - z) ** 2) / (2 * variance), dim=1)
    assert torch.allclose(likelihood, expected, atol=1e-6)


def test_m_floor_by_hand_and_in_the_model_cost():
    x, z, v = torch.zeros(1, 1), torch.tensor([[[0.0], [1.0]]], requires_grad=True), torch.tensor(1.0)
    log_m = torch.tensor([[[0.0], [-math.inf]]])  # m = (1, 0)
    density = [1 / math.sqrt(2 * math.pi), math.exp(-0.5) / math.sqrt(2 * math.pi)]
    cost = tag.negative_log_likelihood("continuous", x, z, log_m, v, m_floor=1e-5)
    assert cost.item() == pytest.approx(-math.log((1 + 1e-5) * density[0] + 1e-5 * density[1]), rel=1e-6)
    cost.sum().backward()
    assert z.grad[0, 1, 0] != 0  # the empty group still learns; with no floor it gets nothing
    z.grad = None
    tag.negative_log_likelihood("continuous", x, z, log_m, v).sum().backward()
    assert z.grad[0, 1, 0] == 0
    model = continuous_tagger(m_floor=0.25)
    xs = torch.rand(4, 6)
    out = model(xs, groups=3, iterations=2, corrupt=False)
    v = model.variance
    gaussian = torch.exp(-0.5 * (xs.unsqueeze(1) - out.z[-1]) ** 2 / v) / torch.sqrt(2 * math.pi * v)
    q = ((out.m[-1] + 0.25) * gaussian).sum(1)
    assert out.cost[-1].item() == pytest.approx(-torch.log(q).mean().item(), rel=1e-5)


def test_norm_epsilon_reaches_the_tag_part_only():
    release, ours = continuous_tagger(norm_epsilon=1e-10), continuous_tagger()
    for model, epsilon in ((release, 1e-10), (ours, 1e-5)):
        for norm in (model.input_norm, model.z_norm, model.m_norm):
            assert norm.eps == epsilon
        assert all(norm.eps == 1e-5 for norm in model.ladder.encoder_norm)
    # LayerNorm over a row (1e-4, -1e-4, ...): 1e-4 / sqrt(1e-8 + eps): about 1 (the release) or 0.0316.
    row = torch.tensor([[1e-4, -1e-4] * 3])
    assert release.z_norm(row)[0, 0].item() == pytest.approx(1e-4 / math.sqrt(1e-8 + 1e-10), rel=1e-4)
    assert ours.z_norm(row)[0, 0].item() == pytest.approx(1e-4 / math.sqrt(1e-8 + 1e-5), rel=1e-4)


def test_layer_norm_in_the_ladder_only_normalises_the_read_outs_over_examples_and_groups():
    model = continuous_tagger(tag_norm="batch")
    assert all(isinstance(norm, nn.LayerNorm) for norm in (*model.ladder.encoder_norm, *model.ladder.decoder_norm))
    assert all(isinstance(norm, nn.BatchNorm1d) for norm in (model.input_norm, model.z_norm, model.m_norm))
    outputs: list[torch.Tensor] = []
    model.m_norm.register_forward_hook(lambda module, args, out: outputs.append(out.detach()))
    with torch.no_grad():
        model(torch.rand(5, 6), groups=3, iterations=1, corrupt=False)
    m_logits = outputs[0]  # (B * K, N): each pixel standardised over examples and groups, not per row
    assert torch.allclose(m_logits.mean(0), torch.zeros(6), atol=1e-5)
    assert torch.allclose(m_logits.var(0, unbiased=False), torch.ones(6), atol=1e-3)
    assert not torch.allclose(m_logits.mean(1), torch.zeros(15), atol=1e-3)
    layer = continuous_tagger()  # Tagger*: every row standardised over its pixels
    assert isinstance(layer.m_norm, nn.LayerNorm)


def test_the_z_norm_changes_the_z_read_out_alone_and_resume_holds_it(shapes_file):
    model = continuous_tagger(tag_norm="batch", z_norm="layer")
    assert isinstance(model.z_norm, nn.LayerNorm)
    assert all(isinstance(norm, nn.BatchNorm1d) for norm in (model.input_norm, model.m_norm))
    assert isinstance(continuous_tagger(tag_norm="batch").z_norm, nn.BatchNorm1d)  # unset: as tag_norm
    config = new_run_config("demo", str(shapes_file), seed=0, device=torch.device("cpu"),
                            norm="batch", z_norm="layer")
    assert config["tagger"]["z_norm"] == "layer" and held_settings(config)["z_norm"] == "layer"


def test_bad_release_options_are_refused(texture_file):
    for option, value in (("m_floor", -1e-5), ("norm_epsilon", 0.0)):
        with pytest.raises(UserError, match="--" + option.replace("_", "-")):
            new_run_config("texture-small", str(texture_file), seed=0, device=torch.device("cpu"), **{option: value})
    with pytest.raises(ValueError, match="variance_map"):
        continuous_tagger(variance_map="exp")


def invoke(*args: str):
    return CliRunner().invoke(tagtool, [str(a) for a in args])


def test_release_options_reach_config_and_resume_holds_them(texture_file, tmp_path):
    out = tmp_path / "run"
    options = [item for name, value in RELEASE.items() for item in ("--" + name.replace("_", "-"), value)]
    result = invoke("train", "--data", texture_file, "--out", out, "--preset", "texture-small", "--epochs", "1",
                    "--quiet", "--device", "cpu", "--initial-variance", RELEASE_INITIAL_VARIANCE, *options)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert {name: config["tagger"][name] for name in RELEASE} == RELEASE
    assert {name: held_settings(config)[name] for name in RELEASE} == RELEASE
    model = load_run(out, torch.device("cpu")).model  # the trained model carries them
    assert model.variance.item() == pytest.approx(math.exp(math.asinh(model.v_raw.item())))
    assert model.config.likelihood_variance == "v-squared" and model.config.m_floor == 1e-5
    assert isinstance(model.m_norm, nn.BatchNorm1d) and model.m_norm.eps == 1e-10
    assert isinstance(model.ladder.encoder_norm[0], nn.LayerNorm)
    for name, value in OTHER.items():
        refused = invoke("train", "--out", out, "--resume", "--epochs", "2", "--" + name.replace("_", "-"), value)
        assert refused.exit_code == 1 and f"--{name.replace('_', '-')} {value} contradicts" in refused.output
    result = invoke("train", "--out", out, "--resume", "--epochs", "2", "--quiet", "--m-floor", 1e-5)
    assert result.exit_code == 0, result.output
    assert {name: json.loads((out / "config.json").read_text())["tagger"][name] for name in RELEASE} == RELEASE


# ------------------------------------------------------------------ FC Ladder and Table 2 choices


def test_fc_ladder_normalises_the_reconstruction_with_the_clean_batch_statistics():
    """Rasmus et al., Algorithm 1: C_d = sum_l lambda_l |(z^_l - mu_l) / sigma_l - z_l|^2 / width,
    mu_l and sigma_l^2 the clean pass's batch mean and variance of W_l h_{l-1} (not of the input)."""
    torch.manual_seed(0)
    model = FCLadder(16, [12, 10, 8, 8, 6], normalise_reconstruction=True)
    x = torch.rand(20, 16)
    torch.manual_seed(1)
    noisy = model.ladder(x, 0.3)
    clean = model.ladder(x)
    h, stats = x, []
    for layer in range(model.ladder.depth):
        pre = h @ model.ladder.encoder[layer].weight.T
        stats.append((pre.mean(0), pre.var(0, unbiased=False)))
        h = clean.lateral[layer + 1] + model.ladder.encoder_affine[layer].bias
        h = torch.relu(h) if layer < model.ladder.depth - 1 else h
    normalised = [noisy.reconstruction[0]] + [
        (r - mean) / torch.sqrt(var + 1e-5) for r, (mean, var) in zip(noisy.reconstruction[1:], stats)]
    expected = sum(w * ((r - z) ** 2).mean() for w, r, z in zip(model.denoising_weights, normalised, clean.lateral))
    torch.testing.assert_close(model.denoising_cost(noisy, clean), expected)
    model.normalise_reconstruction = False
    direct = sum(w * ((r - z) ** 2).mean()
                 for w, r, z in zip(model.denoising_weights, noisy.reconstruction, clean.lateral))
    torch.testing.assert_close(model.denoising_cost(noisy, clean), direct)
    assert not torch.isclose(direct, expected)


def tiny_split(n: int = 8, side: int = 6) -> SplitTensors:
    torch.manual_seed(0)
    return SplitTensors(kind="texture-mnist", images=torch.rand(n, 1, side, side),
                        segmentation=torch.zeros(n, side * side, dtype=torch.long),
                        labels=torch.zeros(n, 1, dtype=torch.long))


def test_ladder_weights_per_budget_and_normalised_reconstruction_reach_the_fc_ladder():
    paper = get_scale("paper")
    few, all_labels = [1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1], [1000.0, 1.0, 0.01, 0.01, 0.01, 0.01, 0.01]
    assert [paper.settings("fc-ladder", b)["denoising_weights"] for b in ("50000", "1000")] == [all_labels, few]
    assert paper.settings("fc-ladder", "50000")["normalise_reconstruction"] is False
    few_labels = paper.with_choices(Choices(ladder_weights="few-labels"))
    assert [few_labels.settings("fc-ladder", b)["denoising_weights"] for b in ("50000", "1000")] == [few, few]
    chosen = paper.with_choices(Choices(ladder_normalise_reconstruction=True))
    assert [chosen.settings("fc-ladder", b)["denoising_weights"] for b in ("50000", "1000")] == [all_labels, few]
    settings = {**chosen.settings("fc-ladder", "50000"), "widths": [12, 10, 8, 8, 6]}
    model = build_classifier("fc-ladder", settings, tiny_split())
    assert model.denoising_weights == tuple(all_labels) and model.normalise_reconstruction


@pytest.mark.parametrize("scale, lr", [("paper", 5e-4), ("cpu", 1e-3), ("quick", 5e-4)])
def test_tagger_supervised_choice_reaches_the_classifier(scale, lr):
    runner = get_scale(scale).settings("tagger", "1000")
    assert (runner["classification_weight"], runner["noise"]) == (0.1, 0.18)
    settings = get_scale(scale).with_choices(Choices(tagger_supervised="pretrained")).settings("tagger", "1000")
    assert (settings["classification_weight"], settings["noise"], settings["lr"]) == (0.05, 0.15, lr)
    tagger = Tagger(TaggerConfig(n_inputs=36, input_kind="continuous", widths=(12, 8, 4)))
    model = build_classifier("tagger", {**settings, "fresh_widths": [6, 5]}, tiny_split(), tagger)
    assert model.classification_weight == 0.05 and model.tagger.config.noise == 0.15


def test_a_benchmark_directory_holds_one_set_of_choices(tmp_path):
    out = tmp_path / "bench"
    Benchmark(out, get_scale("quick"), torch.device("cpu")).open()
    assert json.loads((out / "benchmark.json").read_text())["choices"] == Choices().to_dict()
    result = invoke("benchmark", "--out", out, "--scale", "quick", "--ladder-weights", "few-labels", "--quiet")
    assert result.exit_code == 1
    assert "other choices (the defaults); use another --out for ladder_weights few-labels" in result.output
    with pytest.raises(UserError, match="unknown Ladder weights"):
        Choices(ladder_weights="all")
    (out / "benchmark.json").write_text(json.dumps({"scale": "quick", "choices": {"ladder": 1}}))
    with pytest.raises(UserError, match="'choices' holds unknown fields"):
        Benchmark(out, get_scale("quick"), torch.device("cpu")).open()


def test_set_replaces_a_methods_setting_at_both_budgets_and_is_held_by_the_directory(tmp_path):
    choices = Choices(settings=parse_settings(["fc-ladder.noise_std=0.1", "fc-ladder.widths=[30,20,10,10,10]"]))
    scale = get_scale("cpu").with_choices(choices)
    for budget in ("50000", "1000"):
        settings = scale.settings("fc-ladder", budget)
        assert settings["noise_std"] == 0.1 and settings["widths"] == [30, 20, 10, 10, 10]
        assert settings["lr"] == get_scale("cpu").settings("fc-ladder", budget)["lr"]  # the rest as before
    assert scale.settings("fc-mlp", "50000") == get_scale("cpu").settings("fc-mlp", "50000")
    assert "fc-ladder noise_std=0.1" in choices.describe()
    out = tmp_path / "bench"
    Benchmark(out, scale, torch.device("cpu")).open()
    assert json.loads((out / "benchmark.json").read_text())["choices"]["settings"] == choices.settings
    Benchmark(out, scale, torch.device("cpu")).open()  # the same choices reopen it
    result = invoke("benchmark", "--out", out, "--scale", "cpu", "--set", "fc-ladder.noise_std=0.2", "--quiet")
    assert result.exit_code == 1 and "other choices (fc-ladder noise_std=0.1" in result.output


@pytest.mark.parametrize("assignment, message", [
    ("fc-ladder.nosie_std=0.1", "fc-ladder has no setting 'nosie_std' at the quick scale"),
    ("fc-ladder.lr=fast", "is not JSON"),
    ("mlp.lr=0.1", "unknown method mlp"),
    ("lr=0.1", "expected METHOD.SETTING=VALUE"),
])
def test_set_refuses_what_no_cell_has_before_writing_anything(tmp_path, assignment, message):
    result = invoke("benchmark", "--out", tmp_path / "bench", "--scale", "quick", "--set", assignment, "--quiet")
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bench").exists()
