"""The TextureMNIST1/2 generator (the paper, Section 3, "Textured MNIST"), vectorised over a block.

Per example: ``digits + 1`` distinct textures from the bank, each cropped at its own
random offset; the first is the background. Digit alphas are MNIST intensities / 255
(or, for the diagnostic ``alpha = "binary"``, 1 from intensity 128 up),
shifted per digit (zero fill), then layered bottom to top in the drawing order:
``x = m_i t_i + (1 - m_i) x``. Mask of layer i = m_i times (1 - m_j) of every later layer
j, so the masks sum to one and ``sum_l masks_l * t_l`` is the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from tagdata.layout import UNSCORED, SplitSource, split_layout
from tagdata.specs import TextureMnistSpec
from tagdata.streams import stream
from tagdata.textures import crop_layers, texture_bank

SCORED_ABOVE = 0.9  # a pixel is scored when its largest mask value exceeds this
# uint8 intensity -> alpha, per spec.alpha (tagdata.specs.DIGIT_ALPHAS)
_ALPHAS = {
    "intensity": np.arange(256, dtype=np.float32) / np.float32(255),
    "binary": (np.arange(256) >= 128).astype(np.float32),
}


@dataclass(frozen=True)
class TexturePlan:
    """Every random draw of one split, made up front (int64 arrays).

    textures (N, L): bank index per layer, layer 0 = background, then bottom to top;
    offsets (N, L, 2): crop top row and left column per layer;
    sources (N, digits): index into the split's MNIST range, per digit in selection order;
    order (N, digits): drawing order, ``order[:, i]`` = the selected digit on layer i + 1.
    """

    textures: np.ndarray
    offsets: np.ndarray
    sources: np.ndarray
    order: np.ndarray


def spec_bank(spec: TextureMnistSpec) -> np.ndarray:
    """The dataset's texture bank; its phases come from the seed's own bank stream."""
    phases = stream(spec.seed, "texture-bank").random(len(spec.frequencies))
    return texture_bank(spec.frequencies, spec.canvas, phases)


def plan_split(spec: TextureMnistSpec, split: str) -> TexturePlan:
    """Draw, in this order: textures, crop offsets, source permutations, drawing order."""
    rng = stream(spec.seed, split)
    n, digits = spec.splits[split], spec.digits
    layers = digits + 1
    textures = np.argsort(rng.random((n, len(spec.frequencies))), axis=1, kind="stable")[:, :layers]
    offsets = rng.integers(0, spec.canvas - spec.crop + 1, size=(n, layers, 2))
    if spec.selection == "sequential":
        sources = np.arange(n)[:, None]
    else:
        span = len(spec.sources[split])
        sources = np.stack([rng.permutation(span)[:n] for _ in range(digits)], axis=1)
    if spec.z_order == "random":
        order = np.argsort(rng.random((n, digits)), axis=1, kind="stable")
    else:
        order = np.broadcast_to(np.arange(digits), (n, digits))
    return TexturePlan(*(np.ascontiguousarray(a, dtype=np.int64) for a in (textures, offsets, sources, order)))


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the last two axes by (dy, dx) pixels (negative = up/left), filling with zeros."""
    out = np.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = \
        images[..., max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
    return out


def compose(layers: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image (B, H, W) and masks (B, L, H, W) from layer textures (B, L, H, W) and digit
    alphas (B, L - 1, H, W), both in drawing order."""
    image = layers[:, 0].copy()
    masks = np.empty_like(layers)
    masks[:, 0] = 1
    for i in range(alphas.shape[1]):
        alpha = alphas[:, i]
        keep = 1 - alpha
        image = alpha * layers[:, i + 1] + keep * image
        masks[:, : i + 1] *= keep[:, None]
        masks[:, i + 1] = alpha
    return np.clip(image, 0, 1, out=image), masks


def render(
    spec: TextureMnistSpec, plan: TexturePlan, bank: np.ndarray,
    digits: np.ndarray, labels: np.ndarray, start: int, stop: int,
) -> dict[str, np.ndarray]:
    """The arrays of examples start..stop-1; ``digits``/``labels`` are the split's MNIST
    range. Also returns the cropped layer textures under "layers" (not written)."""
    sources, order = plan.sources[start:stop], plan.order[start:stop]
    selected = digits[sources]  # uint8 (B, digits, H, W), selection order
    for j, (dy, dx) in enumerate(spec.shifts):
        if dy or dx:
            selected[:, j] = shift(selected[:, j], dy, dx)
    alphas = _ALPHAS[spec.alpha][np.take_along_axis(selected, order[:, :, None, None], axis=1)]
    layers = crop_layers(bank, plan.textures[start:stop], plan.offsets[start:stop], spec.crop)
    image, masks = compose(layers, alphas)
    # The masks sum to one, so at most one layer exceeds 0.9: it is the argmax there.
    segmentation = np.full(image.shape, UNSCORED, dtype=np.uint8)
    for layer in range(masks.shape[1]):
        segmentation[masks[:, layer] > SCORED_ABOVE] = layer
    return {
        "images": image[:, None],
        "masks": masks,
        "segmentation": segmentation,
        "labels": np.take_along_axis(labels[sources].astype(np.int64), order, axis=1),
        "textures": plan.textures[start:stop],
        "layers": layers,
    }


def split_source(
    spec: TextureMnistSpec, split: str, bank: np.ndarray, digits: np.ndarray, labels: np.ndarray
) -> SplitSource:
    """The split as the writer consumes it; ``digits``/``labels`` cover its MNIST range."""
    length = spec.splits[split]

    def blocks(block_size: int) -> Iterator[dict[str, np.ndarray]]:
        plan = plan_split(spec, split)
        for start in range(0, length, block_size):
            yield render(spec, plan, bank, digits, labels, start, min(start + block_size, length))

    layout = split_layout(*spec.image_size, layers=spec.digits + 1, objects=spec.digits, textures=True)
    return SplitSource(split, length, layout, blocks)
