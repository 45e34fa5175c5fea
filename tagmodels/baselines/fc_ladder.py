"""The FC Ladder baseline of Table 2: the full Ladder network of Rasmus et al. 2015.

"Semi-supervised learning with Ladder networks" (Rasmus, Valpola, Honkala, Berglund, Raiko,
NIPS 2015), fully connected version: each training step runs a noisy pass (Gaussian noise
of std 0.3 on the input and on every layer's normalised pre-activation) and a clean pass.
The supervised cost is the cross-entropy of the noisy pass's output; the unsupervised cost
is the weighted sum over layers l of the mean squared difference between the decoder's
reconstruction z^_l (noisy pass) and the clean pass's z_l, for every row, labelled or not.
Predictions come from the clean pass.

Denoising weights lambda_l, input first: by default (1000, 10, 0.1, 0.1, 0.1, 0.1, 0.1), the
values Rasmus et al. give for their permutation-invariant MNIST model with 100 labels, whose
encoder has the same depth as this one (six layers to the 10-way output; theirs
1000-500-250-250-250-10, ours 3000-2000-1000-500-250-10). With all labels they use
(1000, 1, 0.01, 0.01, 0.01, 0.01, 0.01); the benchmark uses the 100-label ones for both
budgets unless told otherwise (``tagtool benchmark --ladder-weights``, benchmark/settings.py).

The output layer is the shared Ladder's softmax top, softmax(c (norm(W h) + b)) with its
learned per-unit scale c. The clean targets z_l are batch-normalised already (unit variance
per unit, so the encoder cannot shrink them to make the cost vanish), so by default z^_l is
compared with them directly; ``normalise_reconstruction`` first normalises z^_l (l >= 1) with
the clean pass's batch mean and variance of W_l h_{l-1}, as Algorithm 1 of Rasmus et al. does.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from tagmodels.baselines.classifiers import N_CLASSES, mixture_cross_entropy
from tagmodels.tagger.ladder import Ladder, LadderOutput
from tagmodels.tagger.tag_names import NORM_EPSILON

NOISE_STD = 0.3
DENOISING_WEIGHTS = (1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1)  # Rasmus et al., 100 labels


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Normalise with batch statistics without updating the running ones (the noisy pass).

    The running statistics used at test time must describe clean activations.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for norm in norms:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in norms:
            norm.track_running_stats = True


class FCLadder(nn.Module):
    """Ladder over (inputs, *hidden widths, 10) with per-layer denoising costs."""

    uses_unlabelled = True

    def __init__(
        self,
        n_inputs: int,
        widths: Sequence[int] = (3000, 2000, 1000, 500, 250),
        noise_std: float = NOISE_STD,
        denoising_weights: Sequence[float] = DENOISING_WEIGHTS,
        normalise_reconstruction: bool = False,
    ) -> None:
        super().__init__()
        self.ladder = Ladder((n_inputs, *widths, N_CLASSES), norm="batch", top_activation="softmax")
        if len(denoising_weights) != self.ladder.depth + 1:
            raise ValueError(
                f"{len(denoising_weights)} denoising weights for a Ladder with {self.ladder.depth + 1} levels"
            )
        self.noise_std = noise_std
        self.denoising_weights = tuple(float(w) for w in denoising_weights)
        self.normalise_reconstruction = normalise_reconstruction

    def log_probs(self, top_logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(top_logits, dim=-1)

    def cost(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Supervised cost on the noisy output of the labelled rows + denoising on all rows."""
        with frozen_running_stats(self):
            noisy = self.ladder(x, self.noise_std)
        clean = self.ladder(x)
        supervised = mixture_cross_entropy(self.log_probs(noisy.top_logits[: len(targets)]), targets)
        return supervised + self.denoising_cost(noisy, clean)

    def denoising_cost(self, noisy: LadderOutput, clean: LadderOutput) -> torch.Tensor:
        """sum_l lambda_l * mean over rows and units of (z^_l - z_l)^2, z^_l from the noisy pass
        (normalised first when ``normalise_reconstruction``), z_l from the clean one."""
        reconstruction = noisy.reconstruction
        if self.normalise_reconstruction:
            reconstruction = [reconstruction[0]] + [
                (z_hat - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + NORM_EPSILON)
                for z_hat, pre in zip(reconstruction[1:], clean.pre_activation)
            ]
        return sum(
            weight * (z_hat - z).pow(2).mean()
            for weight, z_hat, z in zip(self.denoising_weights, reconstruction, clean.lateral)
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_probs(self.ladder(x).top_logits).exp()
