"""TAG option names and defaults, importable without torch (presets and the CLI's --help use them)."""

import math
from typing import Literal

# The continuous delta z: equation (4)'s m_k (x~ - z_k) (the default; the 2016 release
# computes the same), Appendix A.5's exact gradient (equation 28) up to the constant
# 1 / (v + sigma^2), i.e. the residual weighted by the posterior of group k, or
# Algorithm 1's literal (x~ - z_k) m_k z~_k.
DeltaZForm = Literal["equation-4", "gradient", "algorithm-1"]
DELTA_Z_FORMS: tuple[str, ...] = ("equation-4", "gradient", "algorithm-1")

# What the network sees of z in the binary case from the second iteration on: sigmoid(z)
# (the default, as we read Appendices A.6-A.7) or the pre-sigmoid z, as the 2016 release feeds it.
ZInput = Literal["probability", "logit"]
Z_INPUTS: tuple[str, ...] = ("probability", "logit")

# The learned variance v starts here unless a run says otherwise: softplus(1), the value of
# every run before the initial v could be chosen (docs/textures.md measures other starts).
DEFAULT_INITIAL_VARIANCE = math.log1p(math.e)

# The map from v's learned raw parameter p to v > 0 (continuous inputs): softplus(p), the
# default, or exp(asinh(p)) = p + sqrt(p^2 + 1), the 2016 release's choice. Under Adam p moves
# by about lr per update, so the release's v falls only hyperbolically (v ~ 1 / (2 |p|) once
# p < 0) where softplus falls exponentially: it anneals over tens of thousands of updates.
VarianceMap = Literal["softplus", "exp-asinh"]
VARIANCE_MAPS: tuple[str, ...] = ("softplus", "exp-asinh")
RELEASE_INITIAL_VARIANCE = 1.0 + math.sqrt(2.0)  # exp(asinh(1)): the release starts from p = 1
INITIAL_M = ("random", "oracle")  # m^0 in evaluation or training: the paper's random draw, or the true grouping (a diagnostic)

# The variance of the continuous L(m_k) = N(x~; z_k, sigma^2 + v) normalised over k: v as in
# the cost (the default), or "v-squared", sigma^2 + v^2, the 2016 release's choice (it treats v
# as a standard deviation there and as the variance in the cost).
LikelihoodVariance = Literal["v", "v-squared"]
LIKELIHOOD_VARIANCES: tuple[str, ...] = ("v", "v-squared")

# The epsilon of every normalisation (torch's default); the 2016 release's TAG part uses 1e-10.
NORM_EPSILON = 1e-5
