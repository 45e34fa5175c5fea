"""The picture of Tagger at work: groups coloured on the object pixels only, background dimmed."""

from __future__ import annotations

import numpy as np
import torch

from tagdata.render import dim_outside, tint
from tagmodels.tagger.model import Tagger, TaggerConfig
from tagmodels.tagger.visualize import CELL_PIXELS, group_colours, tagger_figure
from tagmodels.training.data import load_split, object_pixels


def test_object_pixels_are_the_shapes_own(shapes_file):
    """Shapes are binary: the background layer owns exactly the pixels that are off."""
    objects = object_pixels(str(shapes_file), "test", limit=5)
    images = load_split(str(shapes_file), "test", limit=5).images[:, 0].numpy()
    assert objects.shape == images.shape and objects.dtype == bool
    np.testing.assert_array_equal(objects, images > 0)


def test_dim_outside_fades_only_the_background_and_tint_draws_in_the_colour():
    image = np.full((2, 2, 3), 255, np.uint8)
    image[..., 1:] = 0  # red
    keep = np.array([[True, False], [False, True]])
    dimmed = dim_outside(image, keep)
    assert (dimmed[keep] == (255, 0, 0)).all()
    assert (dimmed[~keep] == (211, 160, 160)).all()  # 0.2 red + 0.8 light grey
    assert tint(np.array([[0.0, 0.5]]), np.array([0, 130, 200])).tolist() == [[[0, 0, 0], [0, 65, 100]]]


def test_figure_rows_and_columns_and_the_groups_cell_dimmed_on_the_background():
    torch.manual_seed(0)
    h = w = 4
    model = Tagger(TaggerConfig(n_inputs=h * w, input_kind="binary", widths=(8, 6, 4), norm="layer")).eval()
    images = torch.zeros(2, 1, h, w)
    images[:, :, :2, :2] = 1.0
    objects = images[:, 0].numpy() > 0
    figure = tagger_figure(model, images, objects, groups=3, iterations=2)
    factor = CELL_PIXELS // h
    cell = h * factor
    assert figure.shape[1] == 36 + 5 * (cell + 2)  # row label, input, groups, 3 group reconstructions
    # The first example's first row: its groups cell, an object pixel against a background pixel.
    top = next(y for y in range(figure.shape[0]) if (figure[y, 38:38 + cell] != 255).any())
    groups_cell = figure[top:top + cell, 38 + cell + 2:38 + 2 * cell + 2]
    background = groups_cell[-1, -1].astype(int)
    assert (background >= 160).all()  # faded towards light grey
    assert group_colours(3).tolist() == [[230, 25, 75], [60, 180, 75], [0, 130, 200]]  # black is the background's
