"""The TAG framework's probabilistic side: corruption, delta z, L(m) and the cost.

Tensors are laid out (batch B, groups K, elements N); x and x~ are (B, N). Each group k
holds z_k, its expected input, and log m_k, its assignment log-probabilities (softmax over k).
The two input kinds differ only here; the parametric mapping (tagger.py) is shared.

Binary inputs (Shapes): q(x | g_k) = z_k = sigmoid(network output), corruption flips bits
with probability beta. Continuous inputs (TextureMNIST): q(x | g_k) = N(x; z_k, v) with one
learned v, corruption adds N(0, sigma^2).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from tagmodels import randomness
from tagmodels.tagger.tag_names import (
    DELTA_Z_FORMS,
    LIKELIHOOD_VARIANCES,
    VARIANCE_MAPS,
    DeltaZForm,
    LikelihoodVariance,
    VarianceMap,
)

InputKind = Literal["binary", "continuous"]

# The binary mixture probability p is squashed affinely into [eps, 1 - eps] before the
# cross-entropy, p (1 - 2 eps) + eps: unlike a clamp, a confidently wrong pixel keeps a gradient.
BINARY_EPS = 1e-4


def variance(raw: torch.Tensor, variance_map: VarianceMap) -> torch.Tensor:
    """v > 0 from its raw parameter p: softplus(p) or exp(asinh(p)) = p + sqrt(p^2 + 1).

    exp(asinh(p)) is evaluated as such: asinh is odd, so for p < 0 it equals
    1 / (sqrt(p^2 + 1) - p) without the cancellation of p + sqrt(p^2 + 1).
    """
    if variance_map == "softplus":
        return torch.nn.functional.softplus(raw)
    if variance_map == "exp-asinh":
        return torch.exp(torch.asinh(raw))
    raise ValueError(f"unknown variance_map {variance_map!r}: choose one of {', '.join(VARIANCE_MAPS)}")


def raw_variance(v: float, variance_map: VarianceMap) -> float:
    """The raw parameter p that ``variance`` maps to v (its inverse)."""
    if variance_map == "softplus":
        return math.log(math.expm1(v))
    if variance_map == "exp-asinh":
        return math.sinh(math.log(v))
    raise ValueError(f"unknown variance_map {variance_map!r}: choose one of {', '.join(VARIANCE_MAPS)}")


def initial_m_logits(noise: torch.Tensor, scale: float, smoothing: float) -> torch.Tensor:
    """m^0's logits from N(0, 1) draws (B, K, N): optionally blurred over the square image grid
    by a Gaussian of ``smoothing`` pixels (then restandardised), times ``scale``.

    The paper draws m^0 at random per element (scale 1, no smoothing). Both knobs strengthen
    what tells the K groups apart at the first iteration, where their inputs differ only through
    m^0 (docs/textures.md, "symmetry").
    """
    if smoothing > 0:
        b, k, n = noise.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"m^0 smoothing needs a square image, got {n} elements")
        radius = max(1, math.ceil(3 * smoothing))
        offsets = torch.arange(-radius, radius + 1, dtype=noise.dtype, device=noise.device)
        kernel = torch.exp(-0.5 * (offsets / smoothing) ** 2)
        kernel = kernel / kernel.square().sum().sqrt()  # unit variance per axis for iid input
        grid = noise.reshape(b * k, 1, side, side)
        for shape in ((1, 1, -1, 1), (1, 1, 1, -1)):  # separable: rows, then columns
            pad = (0, 0, radius, radius) if shape[2] == -1 else (radius, radius, 0, 0)
            grid = torch.nn.functional.conv2d(
                torch.nn.functional.pad(grid, pad, mode="reflect"), kernel.view(shape)
            )
        noise = grid.reshape(b, k, n)
    return scale * noise


def corrupt(x: torch.Tensor, kind: InputKind, noise: float) -> torch.Tensor:
    """x~: bit flips with probability ``noise`` (binary) or additive N(0, noise^2) (continuous)."""
    if kind == "binary":
        flip = randomness.uniform_like(x) < noise
        return torch.where(flip, 1.0 - x, x)
    return x + noise * randomness.normal_like(x)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, var), elementwise with broadcasting."""
    return -0.5 * (torch.log(2 * math.pi * var) + (x - mean) ** 2 / var)


def delta_z_and_likelihood(
    kind: InputKind,
    x_tilde: torch.Tensor,
    z: torch.Tensor,
    log_m: torch.Tensor,
    noise: float,
    v: torch.Tensor | None = None,
    delta_z_form: DeltaZForm = "equation-4",
    likelihood_variance: LikelihoodVariance = "v",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inference inputs delta z_k and L(m_k), each (B, K, N) (equations 4 and 5).

    delta z_k is the direction in which group k's expectation should move to explain the
    corrupted input: the binary one is Appendix A.5's exact gradient of log p(x~) up to a
    positive constant; the continuous one follows ``delta_z_form``. L(m_k) is the
    likelihood of x~ under group k alone, normalised over k (a likelihood ratio, not
    weighted by m); continuous: with variance sigma^2 + v, or sigma^2 + v^2 when
    ``likelihood_variance`` is "v-squared" (only L(m): delta z keeps sigma^2 + v).
    """
    x_t = x_tilde.unsqueeze(1)
    m = log_m.exp()
    if kind == "binary":
        # xi_k = P(x~ = 1 | g_k) after bit flips; delta z_k = (1 - 2 beta) m_k / (sum_h xi_h m_h - 1 + x~).
        gain = 1.0 - 2.0 * noise
        xi = z * gain + noise
        p_one = (m * xi).sum(dim=1, keepdim=True)
        delta_z = gain * m / (p_one - 1.0 + x_t)
        likelihood = x_t * xi + (1.0 - x_t) * (1.0 - xi)
        return delta_z, likelihood / likelihood.sum(dim=1, keepdim=True)
    assert v is not None, "continuous inputs need the variance v"
    # z~_k = N(x~; z_k, v + sigma^2); L(m_k) = z~_k normalised over k.
    log_z_tilde = gaussian_log_density(x_t, z, v + noise**2)
    if delta_z_form == "equation-4":
        weight = m
    elif delta_z_form == "gradient":  # m_k z~_k / sum_h m_h z~_h: the posterior of group k
        weight = torch.softmax(log_m + log_z_tilde, dim=1)
    elif delta_z_form == "algorithm-1":
        weight = m * log_z_tilde.exp()
    else:
        raise ValueError(f"unknown delta_z_form {delta_z_form!r}: choose one of {', '.join(DELTA_Z_FORMS)}")
    delta_z = weight * (x_t - z)
    if likelihood_variance == "v":
        log_likelihood = log_z_tilde
    elif likelihood_variance == "v-squared":
        log_likelihood = gaussian_log_density(x_t, z, v**2 + noise**2)
    else:
        raise ValueError(
            f"unknown likelihood_variance {likelihood_variance!r}: choose one of {', '.join(LIKELIHOOD_VARIANCES)}"
        )
    return delta_z, torch.softmax(log_likelihood, dim=1)


def negative_log_likelihood(
    kind: InputKind,
    x: torch.Tensor,
    z: torch.Tensor,
    log_m: torch.Tensor,
    v: torch.Tensor | None = None,
    m_floor: float = 0.0,
) -> torch.Tensor:
    """-log q(x) per element (B, N) with q(x) = sum_k m_k q(x | z_k) (equation 2): the denoising cost.

    Continuous inputs with ``m_floor`` > 0 weight group k by m_k + m_floor (the 2016 release
    adds 1e-5 inside the log), so a group with m_k = 0 still gets a gradient for its z_k.
    """
    if kind == "binary":
        p = (log_m.exp() * z).sum(dim=1) * (1.0 - 2.0 * BINARY_EPS) + BINARY_EPS
        return -(x * torch.log(p) + (1.0 - x) * torch.log1p(-p))
    assert v is not None, "continuous inputs need the variance v"
    log_weight = log_m if m_floor == 0 else torch.log(log_m.exp() + m_floor)
    log_q = torch.logsumexp(log_weight + gaussian_log_density(x.unsqueeze(1), z, v), dim=1)
    return -log_q
