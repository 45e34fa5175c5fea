"""The binary Shapes generator (the paper, Section 3, "Shapes"), vectorised over a block of images.

Per image: ``objects`` shapes, each a uniformly drawn template placed with its top-left
corner uniform over all positions where it fits. The image is the union of the shapes.
Masks: layer 0 = background, layer i = shape i (drawing order); a pixel covered by c
shapes gives 1/c to each. Segmentation: the shape's layer where exactly one shape covers
the pixel; background and overlaps are unscored (255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from tagdata.layout import UNSCORED, SplitSource, split_layout
from tagdata.specs import ShapesSpec
from tagdata.streams import stream


@dataclass(frozen=True)
class ShapesPlan:
    """Every random draw of one split, made up front: kinds, top rows, left columns, all
    (N, objects) int64 in drawing order."""

    kinds: np.ndarray
    ys: np.ndarray
    xs: np.ndarray


def template_stack(spec: ShapesSpec) -> np.ndarray:
    """All templates top-left aligned in one zero-padded bool array (kinds, rows, cols)."""
    arrays = [t.array for t in spec.shapes]
    rows = max(a.shape[0] for a in arrays)
    cols = max(a.shape[1] for a in arrays)
    stack = np.zeros((len(arrays), rows, cols), dtype=bool)
    for i, a in enumerate(arrays):
        stack[i, : a.shape[0], : a.shape[1]] = a
    return stack


def plan_split(spec: ShapesSpec, split: str) -> ShapesPlan:
    """Draw kinds, then rows, then columns, from the split's own stream."""
    rng = stream(spec.seed, split)
    n, objects = spec.splits[split], spec.objects_in(split)
    heights = np.array([len(t.rows) for t in spec.shapes])
    widths = np.array([len(t.rows[0]) for t in spec.shapes])
    kinds = rng.integers(0, len(spec.shapes), size=(n, objects))
    ys = rng.integers(0, spec.image_size[0] - heights[kinds] + 1)
    xs = rng.integers(0, spec.image_size[1] - widths[kinds] + 1)
    return ShapesPlan(kinds.astype(np.int64), ys.astype(np.int64), xs.astype(np.int64))


def coverage(spec: ShapesSpec, plan: ShapesPlan, start: int, stop: int) -> np.ndarray:
    """Bool (B, objects, H, W): which pixels each shape of examples start..stop-1 covers."""
    stack = template_stack(spec)
    kinds, ys, xs = plan.kinds[start:stop], plan.ys[start:stop], plan.xs[start:stop]
    b, n = kinds.shape
    th, tw = stack.shape[1:]
    height, width = spec.image_size
    # Paint each padded template on a canvas large enough for any placement, then crop.
    canvas = np.zeros((b, n, height + th, width + tw), dtype=bool)
    rows = ys[:, :, None, None] + np.arange(th)[:, None]
    cols = xs[:, :, None, None] + np.arange(tw)
    canvas[np.arange(b)[:, None, None, None], np.arange(n)[:, None, None], rows, cols] = stack[kinds]
    return canvas[:, :, :height, :width]


def render(spec: ShapesSpec, plan: ShapesPlan, start: int, stop: int) -> dict[str, np.ndarray]:
    """The arrays of examples start..stop-1 of a planned split."""
    cover = coverage(spec, plan, start, stop)
    count = cover.sum(axis=1, dtype=np.uint8)
    masks = np.empty((cover.shape[0], cover.shape[1] + 1) + cover.shape[2:], dtype=np.float32)
    masks[:, 0] = count == 0
    share = np.float32(1) / np.maximum(count, 1).astype(np.float32)  # 1/c for c covering shapes
    np.multiply(cover, share[:, None], out=masks[:, 1:])
    # Where exactly one shape covers a pixel, the layer-weighted sum is that shape's layer.
    owner = np.einsum("bnhw,n->bhw", cover.view(np.uint8), np.arange(1, cover.shape[1] + 1, dtype=np.uint8))
    return {
        "images": (count > 0).astype(np.float32)[:, None],
        "masks": masks,
        "segmentation": np.where(count == 1, owner, np.uint8(UNSCORED)),
        "labels": plan.kinds[start:stop],
    }


def split_source(spec: ShapesSpec, split: str) -> SplitSource:
    """The split as the writer consumes it: layout plus a block iterator."""
    objects = spec.objects_in(split)
    length = spec.splits[split]

    def blocks(block_size: int) -> Iterator[dict[str, np.ndarray]]:
        plan = plan_split(spec, split)
        for start in range(0, length, block_size):
            yield render(spec, plan, start, min(start + block_size, length))

    layout = split_layout(*spec.image_size, layers=objects + 1, objects=objects, textures=False)
    return SplitSource(split, length, layout, blocks)
