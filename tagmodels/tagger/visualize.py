"""Pictures of Tagger at work, in the style of the paper's Figures 4 and 5.

One block per example, one row per iteration i: the input, the reconstruction
sum_k m_k z_k, the groups coloured by their soft assignment, then each group's m_k and
each group's z_k. ``remove_group`` drops one group just before the last softmax (Fig. 5 E2),
so the last row shows what the remaining groups fill in.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from tagdata.render import colour_soft, grey_to_rgb, side_by_side, upscale
from tagmodels.tagger.evaluation import seeded
from tagmodels.tagger.model import Tagger

CELL_PIXELS = 80  # each image is enlarged to about this size
LABEL_HEIGHT = 12


@torch.no_grad()
def tagger_figure(
    model: Tagger,
    images: torch.Tensor,
    groups: int,
    iterations: int,
    remove_group: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """uint8 (H, W, 3) figure for ``images`` (n, 1, h, w) on clean input."""
    n, _, h, w = images.shape
    with seeded(seed):
        out = model(images.flatten(1), groups, iterations, corrupt=False, remove_group=remove_group)
    factor = max(1, CELL_PIXELS // max(h, w))
    columns = ["input", "reconstruction", "groups"] + [f"m{k}" for k in range(groups)] + [f"z{k}" for k in range(groups)]
    header = side_by_side(
        _label("", LABEL_HEIGHT), *(_label(name, LABEL_HEIGHT, w * factor) for name in columns), gap=2
    )
    rows = [header]
    for j in range(n):
        for i in range(iterations):
            m = out.m[i][j].view(groups, h, w).cpu().numpy()
            z = out.z[i][j].view(groups, h, w).cpu().numpy()
            cells = [
                grey_to_rgb(images[j].cpu().numpy()),
                grey_to_rgb((m * z).sum(axis=0)),
                colour_soft(m),
                *(grey_to_rgb(m[k]) for k in range(groups)),
                *(grey_to_rgb(z[k]) for k in range(groups)),
            ]
            row = side_by_side(_label(f"i={i + 1}", h * factor), *(upscale(c, factor) for c in cells), gap=2)
            rows.append(_pad_top(row, 8 if i == 0 else 2))
    return np.concatenate(rows, axis=0)


def _label(text: str, height: int, width: int = 36) -> np.ndarray:
    """A white cell holding a short text, for row labels."""
    canvas = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(canvas).text((2, height // 2 - 5), text, fill="black")
    return np.asarray(canvas)


def _pad_top(image: np.ndarray, pixels: int) -> np.ndarray:
    """White space above a row; wider between examples than between iterations."""
    space = np.full((pixels,) + image.shape[1:], 255, np.uint8)
    return np.concatenate([space, image], axis=0)
