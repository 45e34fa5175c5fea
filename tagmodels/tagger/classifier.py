"""FC Tagger as a classifier: the supervised second phase of the paper's Section 3.3.

After unsupervised training, the Ladder of the trained Tagger grows "two fresh randomly
initialized layers on top" (Section 3.3), giving Table 2's widths 3000-2000-1000-500-250 and
the 11-unit output: the two fresh *hidden* layers are 500 and 250, and the 11-unit layer is
the output layer, grown as the Ladder's new softmax top (with its learned per-unit scale,
as Rasmus et al.). Keeping the head inside the Ladder (rather than a separate map on top) is how Rasmus et al. place the softmax layer, and it means the decoder
starts from the class layer, so class evidence flows top-down into the next iteration's z
and m. The head runs per group (groups are batch rows): a softmax over 10 digits + "no
class"; the prediction is the sum over groups of the 10 digit probabilities, renormalised.

Training cost: Tagger's denoising cost (all rows, labelled or not) + 0.1 x the cross-entropy
of the (mixture) targets against the prediction of the last iteration (labelled rows only).
The supervised phase corrupts with sigma 0.18 and runs 4 iterations: the paper does not
state them; these are its 2016 release's settings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn

from tagmodels.baselines.classifiers import N_CLASSES, mixture_cross_entropy
from tagmodels.tagger.model import Tagger

HEAD_UNITS = N_CLASSES + 1  # 10 digits + "no class"
FRESH_WIDTHS = (500, 250)
CLASSIFICATION_WEIGHT = 0.1
SUPERVISED_NOISE = 0.18
SUPERVISED_ITERATIONS = 4


def group_log_prediction(head: torch.Tensor) -> torch.Tensor:
    """log of the prediction (B, 10) from per-group head logits (B, K, 11).

    p_k = softmax over the 11 units of group k; prediction = sum_k p_k[:10], renormalised.
    Computed in log space so that confident groups cannot underflow.
    """
    log_p = torch.log_softmax(head, dim=-1)[..., :N_CLASSES]
    log_digits = torch.logsumexp(log_p, dim=1)
    return log_digits - torch.logsumexp(log_digits, dim=-1, keepdim=True)


class TaggerClassifier(nn.Module):
    """A trained Tagger with fresh layers and the per-group 11-way head on its Ladder.

    ``tagger`` should carry the unsupervised phase's weights; its configured noise is
    replaced by ``noise``. Fresh weights are drawn from the global torch RNG.
    """

    uses_unlabelled = True

    def __init__(
        self,
        tagger: Tagger,
        fresh_widths: Sequence[int] = FRESH_WIDTHS,
        groups: int = 4,
        iterations: int = SUPERVISED_ITERATIONS,
        noise: float = SUPERVISED_NOISE,
        classification_weight: float = CLASSIFICATION_WEIGHT,
    ) -> None:
        super().__init__()
        tagger.config = replace(tagger.config, noise=noise)
        tagger.ladder.grow((*fresh_widths, HEAD_UNITS), top_activation="softmax")
        self.tagger = tagger
        self.groups = groups
        self.iterations = iterations
        self.classification_weight = classification_weight

    def log_prediction(self, top_logits: torch.Tensor) -> torch.Tensor:
        return group_log_prediction(top_logits)

    def cost(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = self.tagger(x, self.groups, self.iterations, corrupt=True)
        classification = mixture_cross_entropy(self.log_prediction(out.top_logits[: len(targets)]), targets)
        return self.tagger.training_cost(out) + self.classification_weight * classification

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tagger(x, self.groups, self.iterations, corrupt=False)
        return self.log_prediction(out.top_logits).exp()
