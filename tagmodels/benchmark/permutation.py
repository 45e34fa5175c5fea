"""One fixed pixel permutation per run, to test the paper's permutation-invariance claim.

Fully connected models cannot tell a consistently permuted image from the original, so
their results should not change; a ConvNet relies on neighbouring pixels and should suffer.
The permutation is drawn from the run's seed (its own stream), and the segmentation moves
with the pixels so that grouping scores stay meaningful.
"""

from __future__ import annotations

import torch

from tagmodels.training.data import SplitTensors

PERMUTATION_STREAM = 7919  # keeps the permutation independent of the run's other draws


def pixel_permutation(n_pixels: int, seed: int) -> torch.Tensor:
    """The permutation of a run: new pixel j is old pixel perm[j]."""
    generator = torch.Generator().manual_seed(PERMUTATION_STREAM * 1_000_003 + seed)
    return torch.randperm(n_pixels, generator=generator)


def permute_split(data: SplitTensors, perm: torch.Tensor) -> SplitTensors:
    """The split with every image (and its segmentation) permuted by ``perm``."""
    perm = perm.to(data.images.device)
    images = data.x[:, perm].reshape(data.images.shape)
    return SplitTensors(data.kind, images, data.segmentation[:, perm.to(data.segmentation.device)], data.labels)
