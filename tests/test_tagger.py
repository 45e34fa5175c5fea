"""Correctness of the TAG equations and the Tagger network on small synthetic inputs."""

from __future__ import annotations

import pytest
import torch

from tagmodels.tagger import tag
from tagmodels.tagger.model import Tagger, TaggerConfig

KINDS = ["binary", "continuous"]


def small_tagger(kind: str, norm: str = "batch", n: int = 12) -> Tagger:
    torch.manual_seed(0)
    config = TaggerConfig(
        n_inputs=n, input_kind=kind, widths=(16, 8, 4), norm=norm,
        data_mean=0.26 if kind == "binary" else 0.5, gate_sigmoid=kind == "continuous",
    )
    model = Tagger(config).double()
    with torch.no_grad():  # at initialisation the combinator gates are 0: move off that point
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def random_state(kind: str, b: int = 3, k: int = 4, n: int = 12):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(b, n, generator=g) < 0.4).double()
    if kind == "continuous":
        x = torch.rand(b, n, generator=g, dtype=torch.double)
    z = torch.rand(b, k, n, generator=g, dtype=torch.double) * 0.9 + 0.05
    log_m = torch.log_softmax(torch.randn(b, k, n, generator=g, dtype=torch.double), dim=1)
    return x, z, log_m


def corrupted_input_log_likelihood(kind: str, x_tilde, z, log_m, noise: float, v) -> torch.Tensor:
    """log p(x~) under the groups, computed directly from the generative model."""
    if kind == "binary":
        xi = z * (1 - 2 * noise) + noise  # P(x~ = 1 | group k) after bit flips
        p_k = x_tilde.unsqueeze(1) * xi + (1 - x_tilde.unsqueeze(1)) * (1 - xi)
        return torch.log((log_m.exp() * p_k).sum(dim=1))
    log_p_k = tag.gaussian_log_density(x_tilde.unsqueeze(1), z, v + noise**2)
    return torch.logsumexp(log_m + log_p_k, dim=1)


@pytest.mark.parametrize("kind, form", [("binary", "equation-4"), ("continuous", "gradient")])
def test_delta_z_is_negative_cost_gradient_up_to_positive_factor(kind, form):
    """Binary delta z (Appendix A.5) and the continuous "gradient" form are exact gradients."""
    x_tilde, z, log_m = random_state(kind)
    z.requires_grad_(True)
    v = torch.tensor(0.3, dtype=torch.double)
    cost = -corrupted_input_log_likelihood(kind, x_tilde, z, log_m, 0.2, v).sum()
    (grad,) = torch.autograd.grad(cost, z)
    delta_z, _ = tag.delta_z_and_likelihood(kind, x_tilde, z.detach(), log_m, 0.2, v, form)
    ratio = delta_z / -grad
    assert torch.all(ratio > 0)
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio.flatten()[0].item()))
    if kind == "continuous":  # the factor is the corrupted-input variance
        torch.testing.assert_close(ratio, torch.full_like(ratio, 0.3 + 0.2**2))


@pytest.mark.parametrize("kind", KINDS)
def test_likelihood_and_m_sum_to_one_over_groups(kind):
    x_tilde, z, log_m = random_state(kind)
    _, likelihood = tag.delta_z_and_likelihood(kind, x_tilde, z, log_m, 0.2, torch.tensor(0.5, dtype=torch.double))
    assert torch.all(likelihood >= 0)
    torch.testing.assert_close(likelihood.sum(dim=1), torch.ones(3, 12, dtype=torch.double))
    model = small_tagger(kind)
    out = model(x_tilde, groups=4, iterations=2)
    for m in out.m:
        torch.testing.assert_close(m.sum(dim=1), torch.ones(3, 12, dtype=torch.double))


def test_binary_likelihood_prefers_the_group_that_explains_the_pixel():
    x_tilde = torch.tensor([[1.0, 0.0]], dtype=torch.double)
    z = torch.tensor([[[0.95, 0.95], [0.05, 0.05]]], dtype=torch.double)
    log_m = torch.log(torch.full((1, 2, 2), 0.5, dtype=torch.double))
    _, likelihood = tag.delta_z_and_likelihood("binary", x_tilde, z, log_m, 0.2)
    assert likelihood[0, 0, 0] > 0.5 > likelihood[0, 1, 0]  # pixel on: group 0 explains it
    assert likelihood[0, 1, 1] > 0.5 > likelihood[0, 0, 1]  # pixel off: group 1 explains it


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_permuting_initial_groups_permutes_every_output(kind, norm):
    model = small_tagger(kind, norm)
    x, _, log_m0 = random_state(kind)
    perm = torch.tensor([2, 0, 3, 1])
    out = model(x, groups=4, iterations=3, corrupt=False, log_m0=log_m0)
    permuted = model(x, groups=4, iterations=3, corrupt=False, log_m0=log_m0[:, perm])
    for i in range(3):
        torch.testing.assert_close(permuted.z[i], out.z[i][:, perm])
        torch.testing.assert_close(permuted.log_m[i], out.log_m[i][:, perm])
    torch.testing.assert_close(permuted.cost, out.cost)


@pytest.mark.parametrize("kind", KINDS)
def test_network_sees_x_only_through_corrupted_input(kind, monkeypatch):
    """Two clean inputs with the same x~ give identical z and m; only the cost (target) differs."""
    model = small_tagger(kind)
    x1, _, log_m0 = random_state(kind)
    x2 = 1.0 - x1 if kind == "binary" else x1 + 0.3
    x_tilde = random_state(kind)[0].flip(1)
    monkeypatch.setattr(tag, "corrupt", lambda x, kind, noise: x_tilde)
    out1 = model(x1, 4, 3, corrupt=True, log_m0=log_m0)
    out2 = model(x2, 4, 3, corrupt=True, log_m0=log_m0)
    for i in range(3):
        torch.testing.assert_close(out1.z[i], out2.z[i])
        torch.testing.assert_close(out1.log_m[i], out2.log_m[i])
    assert not torch.allclose(out1.cost, out2.cost)


def test_binary_corruption_flips_about_beta_of_the_bits():
    torch.manual_seed(0)
    x = (torch.rand(200, 400) < 0.3).float()
    x_tilde = tag.corrupt(x, "binary", 0.2)
    assert set(x_tilde.unique().tolist()) <= {0.0, 1.0}
    assert abs((x_tilde != x).float().mean().item() - 0.2) < 0.005


def test_continuous_corruption_adds_gaussian_noise():
    torch.manual_seed(0)
    x = torch.rand(200, 784)
    residual = tag.corrupt(x, "continuous", 0.2) - x
    assert abs(residual.std().item() - 0.2) < 0.002
    assert abs(residual.mean().item()) < 0.002


@pytest.mark.parametrize("groups,iterations", [(2, 1), (4, 5), (6, 2)])
def test_any_groups_and_iterations_at_evaluation(groups, iterations):
    model = small_tagger("binary")
    x, _, _ = random_state("binary")
    out = model(x, groups=groups, iterations=iterations, corrupt=False)
    assert len(out.z) == len(out.log_m) == iterations
    assert out.z[-1].shape == (3, groups, 12)
    assert out.cost.shape == (iterations,)
    assert torch.all((out.z[-1] > 0) & (out.z[-1] < 1))


def test_removed_group_gets_no_assignment_in_last_iteration():
    model = small_tagger("binary")
    x, _, _ = random_state("binary")
    out = model(x, groups=4, iterations=3, corrupt=False, remove_group=1)
    assert torch.all(out.m[-1][:, 1] < 1e-6)
    assert torch.all(out.m[-2][:, 1] > 0)
    torch.testing.assert_close(out.m[-1].sum(dim=1), torch.ones(3, 12, dtype=torch.double))


def test_iteration_reduction_mean_by_default_or_sum():
    """Section 3.1 averages the cost over iterations; equation (1)'s sum is an option."""
    assert TaggerConfig(n_inputs=4).iteration_reduction == "mean"
    model = small_tagger("binary")
    x, _, _ = random_state("binary")
    out = model(x, 4, 3)
    torch.testing.assert_close(model.training_cost(out), out.cost.sum() / 3)
    model.config.iteration_reduction = "sum"
    torch.testing.assert_close(model.training_cost(out), out.cost.sum())


def test_variance_is_positive_and_learned():
    model = small_tagger("continuous")
    assert model.variance.item() > 0
    x, _, _ = random_state("continuous")
    model.training_cost(model(x, 4, 2)).backward()
    assert model.v_raw.grad is not None and model.v_raw.grad.abs().item() > 0


def test_initial_variance_sets_v_at_the_start():
    """v starts at softplus(1) unless initial_variance says otherwise (docs/textures.md)."""
    default = Tagger(TaggerConfig(n_inputs=4, input_kind="continuous"))
    assert default.v_raw.item() == pytest.approx(1.0)
    small = Tagger(TaggerConfig(n_inputs=4, input_kind="continuous", initial_variance=0.05))
    assert small.variance.item() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="initial_variance"):
        Tagger(TaggerConfig(n_inputs=4, input_kind="continuous", initial_variance=0.0))


@pytest.mark.parametrize("z_input", ["probability", "logit"])
def test_binary_z_reaches_the_network_as_sigmoid_or_as_logit(z_input):
    """Iteration 2 feeds z^1 as the probability sigmoid(z) or, as the 2016 release, its logit."""
    model = small_tagger("binary")
    model.config.z_input = z_input
    x, _, log_m0 = random_state("binary")
    fed = []
    model.input_map.register_forward_hook(lambda module, inputs, output: fed.append(inputs[0][:, :12]))
    out = model(x, 4, 2, corrupt=False, log_m0=log_m0)
    z1 = out.z[0].reshape(-1, 12)
    expected = torch.logit(z1) if z_input == "logit" else z1
    torch.testing.assert_close(fed[1], expected)
    torch.testing.assert_close(fed[0], torch.full_like(z1, model.config.data_mean))  # z^0 either way
