"""The TAG equations and the Tagger's wiring, each checked against numbers worked out by hand.

These tests pin what the paper defines (equations 2-5, Appendix A.4-A.5, the Ladder of
Section 2.2) to plain arithmetic written here, not to the module's own helpers, so that a
plausible slip in the model core (a wrong input block, L(m) weighted by m, the clip value,
the combinator's formula) fails a test.
"""

from __future__ import annotations

import math

import pytest
import torch

from tagmodels.tagger import tag
from tagmodels.tagger.ladder import GaussianCombinator, Ladder
from tagmodels.tagger.model import Tagger, TaggerConfig

D = torch.double


def normal_pdf(x: float, mean: float, var: float) -> float:
    return math.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


# One pixel, two groups, with m far from uniform so that any use of m where it does not belong shows.
M = (0.8, 0.2)


def one_pixel(x_tilde: float, z: tuple[float, float]):
    return (
        torch.tensor([[x_tilde]], dtype=D),
        torch.tensor([[[z[0]], [z[1]]]], dtype=D),
        torch.log(torch.tensor([[[M[0]], [M[1]]]], dtype=D)),
    )


def test_binary_likelihood_and_delta_z_by_hand():
    """beta = 0.2: xi_k = 0.6 z_k + 0.2; L(m_k) = xi_k (x~ = 1) normalised over k, without m."""
    x_tilde, z, log_m = one_pixel(1.0, (0.9, 0.1))
    delta_z, likelihood = tag.delta_z_and_likelihood("binary", x_tilde, z, log_m, 0.2)
    xi = (0.9 * 0.6 + 0.2, 0.1 * 0.6 + 0.2)  # 0.74, 0.26
    torch.testing.assert_close(likelihood.flatten(), torch.tensor([xi[0] / sum(xi), xi[1] / sum(xi)], dtype=D))
    # delta z_k = (1 - 2 beta) m_k / (sum_h xi_h m_h - 1 + x~); positive for x~ = 1: raise z.
    p_one = M[0] * xi[0] + M[1] * xi[1]
    torch.testing.assert_close(delta_z.flatten(), torch.tensor([0.6 * m / p_one for m in M], dtype=D))
    x_tilde, z, log_m = one_pixel(0.0, (0.9, 0.1))
    delta_z, likelihood = tag.delta_z_and_likelihood("binary", x_tilde, z, log_m, 0.2)
    torch.testing.assert_close(likelihood.flatten(), torch.tensor([1 - xi[0], 1 - xi[1]], dtype=D) / (2 - sum(xi)))
    torch.testing.assert_close(delta_z.flatten(), torch.tensor([0.6 * m / (p_one - 1) for m in M], dtype=D))
    assert torch.all(delta_z < 0)  # x~ = 0: lower z


@pytest.mark.parametrize("form", tag.DELTA_Z_FORMS)
def test_continuous_likelihood_and_delta_z_by_hand(form):
    """L(m_k) = z~_k / sum_h z~_h with z~_k = N(x~; z_k, v + sigma^2); delta z per its source."""
    x_tilde, z, log_m = one_pixel(0.7, (0.6, 0.1))
    v, sigma = 0.05, 0.2
    delta_z, likelihood = tag.delta_z_and_likelihood(
        "continuous", x_tilde, z, log_m, sigma, torch.tensor(v, dtype=D), form
    )
    z_tilde = [normal_pdf(0.7, zk, v + sigma**2) for zk in (0.6, 0.1)]
    torch.testing.assert_close(likelihood.flatten(), torch.tensor([zt / sum(z_tilde) for zt in z_tilde], dtype=D))
    residual = (0.7 - 0.6, 0.7 - 0.1)
    weight = {
        "equation-4": M,  # m_k (x~ - z_k)
        "algorithm-1": tuple(m * zt for m, zt in zip(M, z_tilde)),  # (x~ - z_k) m_k z~_k
        "gradient": tuple(m * zt / sum(a * b for a, b in zip(M, z_tilde)) for m, zt in zip(M, z_tilde)),
    }[form]
    torch.testing.assert_close(delta_z.flatten(), torch.tensor([w * r for w, r in zip(weight, residual)], dtype=D))


def test_equation_4_is_the_default_delta_z():
    assert TaggerConfig(n_inputs=4).delta_z_form == "equation-4"
    x_tilde, z, log_m = one_pixel(0.7, (0.6, 0.1))
    delta_z, _ = tag.delta_z_and_likelihood("continuous", x_tilde, z, log_m, 0.2, torch.tensor(0.05, dtype=D))
    torch.testing.assert_close(delta_z.flatten(), torch.tensor([0.8 * 0.1, 0.2 * 0.6], dtype=D))


def test_binary_cost_by_hand_with_the_affine_soft_clip():
    """-log q(x) with p = sum_k m_k z_k squashed to p (1 - 2e-4) + 1e-4."""
    _, z, log_m = one_pixel(1.0, (0.9, 0.1))
    p = (0.8 * 0.9 + 0.2 * 0.1) * (1 - 2e-4) + 1e-4
    for x, expected in ((1.0, -math.log(p)), (0.0, -math.log(1 - p))):
        cost = tag.negative_log_likelihood("binary", torch.tensor([[x]], dtype=D), z, log_m)
        torch.testing.assert_close(cost.flatten(), torch.tensor([expected], dtype=D))
    # A confidently wrong pixel: p = 0 where x = 1 costs -log(1e-4) and still has a gradient.
    z_wrong = torch.zeros(1, 2, 1, dtype=D, requires_grad=True)
    cost = tag.negative_log_likelihood("binary", torch.ones(1, 1, dtype=D), z_wrong, log_m)
    torch.testing.assert_close(cost.flatten(), torch.tensor([-math.log(1e-4)], dtype=D))
    cost.sum().backward()
    assert torch.all(z_wrong.grad < 0)


def test_continuous_cost_by_hand_is_the_mixture_under_m():
    """-log sum_k m_k N(x; z_k, v) (equation 6)."""
    _, z, log_m = one_pixel(0.0, (0.6, 0.1))
    v = 0.05
    cost = tag.negative_log_likelihood("continuous", torch.tensor([[0.5]], dtype=D), z, log_m, torch.tensor(v, dtype=D))
    expected = -math.log(0.8 * normal_pdf(0.5, 0.6, v) + 0.2 * normal_pdf(0.5, 0.1, v))
    torch.testing.assert_close(cost.flatten(), torch.tensor([expected], dtype=D))


def tiny_tagger(kind: str, n: int = 6) -> Tagger:
    torch.manual_seed(0)
    config = TaggerConfig(n_inputs=n, input_kind=kind, widths=(10, 8, 5), norm="layer", data_mean=0.37)
    return Tagger(config).double()


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_each_input_block_of_the_network_holds_what_the_paper_says(kind):
    """The first iteration's input is [z^0 = data mean, delta z, m^0, L(m^0)], in that order."""
    model = tiny_tagger(kind)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 6, generator=g, dtype=D)
    if kind == "binary":
        x = (x > 0.5).double()
    log_m0 = torch.log_softmax(torch.randn(2, 3, 6, generator=g, dtype=D), dim=1)
    seen = []
    model.input_map.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    model(x, groups=3, iterations=2, corrupt=False, log_m0=log_m0)
    blocks = seen[0].view(2, 3, 4, 6)
    z0 = torch.full((2, 3, 6), 0.37, dtype=D)
    m0 = log_m0.exp()
    if kind == "binary":
        xi = z0 * 0.6 + 0.2
        p_one = (m0 * xi).sum(1, keepdim=True)
        delta_z = 0.6 * m0 / (p_one - 1 + x.unsqueeze(1))
        lik = torch.where(x.unsqueeze(1) > 0.5, xi, 1 - xi)
    else:
        v = torch.nn.functional.softplus(torch.tensor(1.0, dtype=D))
        delta_z = m0 * (x.unsqueeze(1) - z0)
        lik = torch.exp(-((x.unsqueeze(1) - z0) ** 2) / (2 * (v + 0.04)))
    torch.testing.assert_close(blocks[:, :, 0], z0)
    torch.testing.assert_close(blocks[:, :, 1], delta_z)
    torch.testing.assert_close(blocks[:, :, 2], m0)
    torch.testing.assert_close(blocks[:, :, 3], lik / lik.sum(1, keepdim=True))
    assert len(seen) == 2  # one call per iteration, groups as batch rows


def test_initial_z_is_the_data_mean_and_initial_m_a_softmax_of_normals():
    model = tiny_tagger("binary")
    torch.manual_seed(4)
    z0, log_m0 = model.initial_state(500, 4, torch.zeros(1, dtype=D))
    assert torch.all(z0 == 0.37)
    m0 = log_m0.exp()
    torch.testing.assert_close(m0.sum(1), torch.ones(500, 6, dtype=D))
    # softmax of N(0, 1) over 4 groups: the logit differences have variance 2.
    differences = log_m0[:, 0] - log_m0[:, 1]
    assert abs(differences.var().item() - 2.0) < 0.15


def test_gaussian_combinator_by_hand():
    """mu = a1 sig(a2 u + a3) + a4 u + a5, v = a6 sig(a7 u + a8) + a9 u + a10, z^ = (z - mu) v + mu."""
    torch.manual_seed(5)
    g = GaussianCombinator(3)
    with torch.no_grad():
        g.a.copy_(torch.randn(10, 3))
    z, u = torch.randn(4, 3), torch.randn(4, 3)
    a = g.a.detach()
    for gate_sigmoid in (False, True):
        g.gate_sigmoid = gate_sigmoid
        out = g(z, u)
        for row in range(4):
            for unit in range(3):
                A = [a[i, unit].item() for i in range(10)]
                uu, zz = u[row, unit].item(), z[row, unit].item()
                sig = lambda s: 1 / (1 + math.exp(-s))  # noqa: E731
                mu = A[0] * sig(A[1] * uu + A[2]) + A[3] * uu + A[4]
                v = A[5] * sig(A[6] * uu + A[7]) + A[8] * uu + A[9]
                v = sig(v) if gate_sigmoid else v
                assert out[row, unit].item() == pytest.approx((zz - mu) * v + mu, rel=1e-5, abs=1e-6)


def test_ladder_softmax_top_by_hand_and_the_decoder_starts_from_it():
    """h_top = softmax(c (norm(W h) + b)); the decoder's top signal is normalise(h_top)."""
    torch.manual_seed(6)
    ladder = Ladder((5, 4, 3), norm="layer")
    with torch.no_grad():
        ladder.top_scale.copy_(torch.tensor([0.5, 2.0, -1.0]))
        ladder.encoder_affine[1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = torch.randn(7, 5)
    out = ladder(x)
    h1 = torch.relu(torch.nn.functional.layer_norm(x @ ladder.encoder[0].weight.T, (4,)) + ladder.encoder_affine[0].bias)
    pre = torch.nn.functional.layer_norm(h1 @ ladder.encoder[1].weight.T, (3,))
    logits = torch.tensor([0.5, 2.0, -1.0]) * (pre + torch.tensor([0.1, -0.2, 0.3]))
    torch.testing.assert_close(out.top_logits, logits)
    torch.testing.assert_close(out.top, torch.softmax(logits, dim=-1))
    seen = []
    ladder.decoder_norm[2].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    ladder(x)
    torch.testing.assert_close(seen[0], out.top)


def test_the_softmax_top_is_tagger_default_and_relu_an_option():
    assert tiny_tagger("binary").ladder.top_activation == "softmax"
    config = TaggerConfig(n_inputs=6, widths=(10, 8, 5), top_activation="relu")
    out = Tagger(config)(torch.rand(3, 6), groups=2, iterations=1)
    assert Tagger(config).ladder.top_scale is None and out.top_logits.shape == (3, 2, 5)


def test_tag_arithmetic_stays_float32_under_bf16_autocast():
    """A confident network under bf16 autocast still gives a finite cost and float32 z and m."""
    model = tiny_tagger("binary").float()
    with torch.no_grad():
        model.z_affine.scale.fill_(40.0)  # sigmoid(z) rounds to exactly 1 in bf16
    x = torch.zeros(4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, groups=2, iterations=2, corrupt=False)
        cost = model.training_cost(out)
    assert out.z[-1].dtype == out.log_m[-1].dtype == torch.float32
    assert torch.isfinite(cost)
    cost.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
