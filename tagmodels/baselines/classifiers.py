"""The purely supervised baselines of the paper's Table 2: FC MLP and the Model-C ConvNet.

Every classifier of the benchmark (these two, :mod:`tagmodels.baselines.fc_ladder` and
:mod:`tagmodels.tagger.classifier`) offers the same two methods, so that one objective and
one evaluation routine serve all four:

- ``cost(x, targets)``: the training cost of a batch of flat images x (B, N) whose first
  ``len(targets)`` rows are labelled with target distributions (L, 10); the remaining rows
  are unlabelled and only models with an unsupervised cost use them.
- ``predict(x)``: class probabilities (B, 10) for clean images, used for the test error.

Two-digit targets are the 50/50 mixture of the labels, so all costs are the categorical
cross-entropy of a target *distribution* against the predicted one.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
from torch import nn

from tagmodels.layers import UnitAffine, make_norm, scaled_linear

N_CLASSES = 10


class Classifier(Protocol):
    """What the benchmark trains and scores (an nn.Module; see the module docstring)."""

    uses_unlabelled: bool

    def cost(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...


def mixture_cross_entropy(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum_c t_c log p_c, averaged over the rows; t may be a mixture (two digits: 1/2 each)."""
    return -(targets * log_probs).sum(dim=-1).mean()


class LogitClassifier(nn.Module):
    """A purely supervised classifier: softmax over 10 logits, labelled rows only."""

    uses_unlabelled = False

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cost(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(self.logits(x[: len(targets)]), dim=-1)
        return mixture_cross_entropy(log_probs, targets)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


class FCMLP(LogitClassifier):
    """Fully connected ReLU network with batch normalisation after each hidden layer.

    Hidden layer: Linear -> BatchNorm -> bias -> ReLU (the Ladder encoder's layer without
    noise or decoder); the output layer is a plain linear map to 10 logits.
    """

    def __init__(self, n_inputs: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        below = n_inputs
        for width in widths:
            layers += [scaled_linear(below, width), make_norm("batch", width), UnitAffine(width), nn.ReLU()]
            below = width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(below, N_CLASSES)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


def _conv_block(c_in: int, c_out: int, size: int, padding: int) -> list[nn.Module]:
    """Convolution -> batch normalisation -> ReLU (no bias: the norm's shift replaces it)."""
    return [nn.Conv2d(c_in, c_out, size, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class ModelC(LogitClassifier):
    """Model C of Springenberg et al. 2015 ("Striving for simplicity"), as the paper varies it.

    3x3 conv c1, 3x3 conv c1, 3x3 max-pool stride 2, 3x3 conv c2, 3x3 conv c2, 3x3 max-pool
    stride 2, 3x3 conv c2 (valid), 1x1 conv c2, 1x1 conv 10; batch normalisation after every
    convolution, no dropout, and the final global average pooling replaced by a fully
    connected layer to the 10 logits (c1 = 96, c2 = 192 in the paper). The first convolutions
    and the pools pad by one, as Model C does on CIFAR, so 28x28 inputs give 7x7 maps after
    the pools and 5x5 after the valid convolution. Images arrive flat and are reshaped, so a
    fixed pixel permutation of the input destroys the spatial structure the convolutions need.
    """

    def __init__(self, image_size: tuple[int, int], channels: tuple[int, int] = (96, 192)) -> None:
        super().__init__()
        c1, c2 = channels
        self.image_size = tuple(image_size)
        self.features = nn.Sequential(
            *_conv_block(1, c1, 3, 1),
            *_conv_block(c1, c1, 3, 1),
            nn.MaxPool2d(3, stride=2, padding=1),
            *_conv_block(c1, c2, 3, 1),
            *_conv_block(c2, c2, 3, 1),
            nn.MaxPool2d(3, stride=2, padding=1),
            *_conv_block(c2, c2, 3, 0),
            *_conv_block(c2, c2, 1, 0),
            *_conv_block(c2, N_CLASSES, 1, 0),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_features = self.features.eval()(torch.zeros(1, 1, *self.image_size)).shape[1]
        self.features.train()
        self.out = nn.Linear(n_features, N_CLASSES)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x.view(-1, 1, *self.image_size)))
