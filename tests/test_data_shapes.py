"""The Shapes generator against the recipe of the paper's Section 3 ("Shapes")."""

from __future__ import annotations

import numpy as np
import pytest

from tagdata import shapes
from tagdata.specs import resolve_spec, with_overrides

SQUARE = np.ones((7, 7), dtype=bool)
SQUARE[2:5, 2:5] = False
UP = np.array([[c == "1" for c in row] for row in [
    "000001100000",
    "000011110000",
    "000111111000",
    "001110011100",
    "011100001110",
    "111111111111",
    "111111111111",
]])
TEMPLATES = [SQUARE, UP, UP[::-1]]


@pytest.fixture(scope="module")
def spec():
    return with_overrides(resolve_spec("shapes"), train=3000, valid=10, test=200, single=100)


@pytest.fixture(scope="module")
def train(spec):
    plan = shapes.plan_split(spec, "train")
    return plan, shapes.coverage(spec, plan, 0, 3000), shapes.render(spec, plan, 0, 3000)


def test_templates_pixel_exact(spec):
    for template, expected in zip(spec.shapes, TEMPLATES):
        np.testing.assert_array_equal(template.array, expected)
    stack = shapes.template_stack(spec)
    assert stack.shape == (3, 7, 12)
    np.testing.assert_array_equal(stack[0, :, :7], SQUARE)
    assert not stack[0, :, 7:].any()


def test_placement_and_coverage_match_an_independent_drawing(spec, train):
    plan, cover, _ = train
    for b in range(50):
        for k in range(3):
            template = TEMPLATES[plan.kinds[b, k]]
            expected = np.zeros((20, 20), dtype=bool)
            y, x = plan.ys[b, k], plan.xs[b, k]
            expected[y:y + template.shape[0], x:x + template.shape[1]] = template
            np.testing.assert_array_equal(cover[b, k], expected)


def test_per_object_pixel_counts(train):
    plan, cover, _ = train
    expected = np.array([t.sum() for t in TEMPLATES])[plan.kinds]
    assert set(expected.ravel()) == {40, 48}
    np.testing.assert_array_equal(cover.sum(axis=(2, 3)), expected)


def test_positions_are_uniform_over_every_fitting_place(train):
    plan, _, _ = train
    for kind, (height, width) in enumerate([(7, 7), (7, 12), (7, 12)]):
        ys, xs = plan.ys[plan.kinds == kind], plan.xs[plan.kinds == kind]
        assert set(ys) == set(range(20 - height + 1))
        assert set(xs) == set(range(20 - width + 1))
    counts = np.bincount(plan.kinds.ravel(), minlength=3) / plan.kinds.size
    np.testing.assert_allclose(counts, 1 / 3, atol=0.02)


def test_image_masks_and_segmentation(train):
    _, cover, data = train
    count = cover.sum(axis=1)
    np.testing.assert_array_equal(data["images"][:, 0], (count > 0).astype(np.float32))
    masks = data["masks"]
    assert masks.dtype == np.float32 and masks.shape == (3000, 4, 20, 20)
    np.testing.assert_allclose(masks.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(masks[:, 0], count == 0)
    # overlaps: shared equally among the covering shapes
    shared = np.where(cover, 1 / np.maximum(count, 1)[:, None], 0).astype(np.float32)
    np.testing.assert_array_equal(masks[:, 1:], shared)
    assert (count >= 2).any()
    seg = data["segmentation"]
    assert seg.dtype == np.uint8
    assert (seg[count != 1] == 255).all()  # background and overlaps are unscored
    single = count == 1
    np.testing.assert_array_equal(seg[single], cover.argmax(axis=1)[single] + 1)


def test_labels_are_the_kinds_in_drawing_order(train):
    plan, cover, data = train
    np.testing.assert_array_equal(data["labels"], plan.kinds)
    assert data["labels"].dtype == np.int64
    # layer k + 1 holds exactly the pixels of a template of kind labels[:, k]
    sizes = cover.sum(axis=(2, 3))
    np.testing.assert_array_equal(sizes == 40, data["labels"] == 0)


def test_single_split_has_one_shape(spec):
    plan = shapes.plan_split(spec, "single")
    data = shapes.render(spec, plan, 0, 100)
    assert data["masks"].shape == (100, 2, 20, 20) and data["labels"].shape == (100, 1)
    seg = data["segmentation"]
    np.testing.assert_array_equal(seg == 1, data["images"][:, 0] == 1)
    assert set(np.unique(seg)) == {1, 255}


def test_object_count_specs():
    for name, n in (("shapes-2obj", 2), ("shapes-4obj", 4)):
        spec = with_overrides(resolve_spec(name), train=20)
        data = shapes.render(spec, shapes.plan_split(spec, "train"), 0, 20)
        assert data["masks"].shape[1] == n + 1 and data["labels"].shape == (20, n)


def test_rendering_does_not_depend_on_block_boundaries(spec, train):
    plan, _, whole = train
    parts = [shapes.render(spec, plan, a, min(a + 77, 3000)) for a in range(0, 3000, 77)]
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name])
