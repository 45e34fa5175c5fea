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
