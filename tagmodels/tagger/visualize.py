"""Pictures of Tagger at work, in the style of the paper's Figures 4 and 5, read at a glance.

One block per example, one row per iteration i: the input; the groups, each pixel coloured
by its soft assignment m over the K groups, on the object pixels only (the background, which
the datasets leave unscored or label 0, is dimmed: there the grouping is not scored); then
each group's reconstruction, its part m_k z_k of sum_k m_k z_k, drawn in the group's colour.
``remove_group`` drops one group just before the last softmax (Fig. 5 E2), so the last row
shows what the remaining groups fill in.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from tagdata.render import colour_soft, dim_outside, grey_to_rgb, palette, side_by_side, tint, upscale
from tagmodels.tagger.evaluation import seeded
from tagmodels.tagger.model import Tagger

CELL_PIXELS = 80  # each image is enlarged to about this size
LABEL_HEIGHT = 12
ROW_LABEL_WIDTH = 36
LEGEND = "groups: colour = m on object pixels, background dimmed; group k: its reconstruction m_k z_k"


def group_colours(groups: int) -> np.ndarray:
    """uint8 (K, 3): group k gets the palette's colour k + 1, so that black stays the background's."""
    return palette(groups + 1)[1:]


@torch.no_grad()
def tagger_figure(
    model: Tagger,
    images: torch.Tensor,
    objects: np.ndarray,
    groups: int,
    iterations: int,
    remove_group: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """uint8 (H, W, 3) figure for ``images`` (n, 1, h, w) on clean input; ``objects`` (n, h, w)
    bool marks the object (not background) pixels."""
    n, _, h, w = images.shape
    with seeded(seed):
        out = model(images.flatten(1), groups, iterations, corrupt=False, remove_group=remove_group)
    factor = max(1, CELL_PIXELS // max(h, w))
    colours = group_colours(groups)
    columns = ["input", "groups"] + [f"group {k + 1}" for k in range(groups)]
    header = side_by_side(
        _label("", LABEL_HEIGHT), *(_label(name, LABEL_HEIGHT, w * factor) for name in columns), gap=2
    )
    rows = []
    for j in range(n):
        for i in range(iterations):
            m = out.m[i][j].view(groups, h, w).cpu().numpy()
            z = out.z[i][j].view(groups, h, w).cpu().numpy()
            cells = [
                grey_to_rgb(images[j].cpu().numpy()),
                dim_outside(colour_soft(m, colours), objects[j]),
                *(tint(m[k] * z[k], colours[k]) for k in range(groups)),
            ]
            row = side_by_side(_label(f"i={i + 1}", h * factor), *(upscale(c, factor) for c in cells), gap=2)
            rows.append(_pad_top(row, 8 if i == 0 else 2))
    legend = _label(LEGEND, LABEL_HEIGHT + 4, header.shape[1])
    return np.concatenate([legend, header, *rows], axis=0)


def _label(text: str, height: int, width: int = ROW_LABEL_WIDTH) -> np.ndarray:
    """A white cell holding a short text, for row labels."""
    canvas = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(canvas).text((2, height // 2 - 5), text, fill="black")
    return np.asarray(canvas)


def _pad_top(image: np.ndarray, pixels: int) -> np.ndarray:
    """White space above a row; wider between examples than between iterations."""
    space = np.full((pixels,) + image.shape[1:], 255, np.uint8)
    return np.concatenate([space, image], axis=0)
