"""The texture bank and the TextureMNIST generators against the recipe of the paper's Section 3 ("Textured MNIST")."""

from __future__ import annotations

import numpy as np
import pytest

from tagdata import build, idx, texture_mnist
from tagdata.specs import resolve_spec, with_overrides
from tagdata.streams import stream
from tagdata.textures import crop_layers, texture_bank


@pytest.fixture(scope="module")
def bank_spec():
    return resolve_spec("texture-mnist2")


@pytest.fixture(scope="module")
def bank(bank_spec):
    return texture_mnist.spec_bank(bank_spec)


def test_bank_shape_and_range(bank):
    assert bank.shape == (20, 38, 38) and bank.dtype == np.float32
    assert (bank.min(axis=(1, 2)) == 0).all() and (bank.max(axis=(1, 2)) == 1).all()


def test_bank_frequencies_by_fft(bank, bank_spec):
    for texture, (u, v) in zip(bank, bank_spec.frequencies):
        power = np.abs(np.fft.fft2(texture - texture.mean())) ** 2
        peaks = power[u, v] + power[-u % 38, -v % 38]
        assert peaks / power.sum() > 0.9999, (u, v)


def test_bank_is_the_normalised_real_part_of_the_inverse_fft(bank, bank_spec):
    phases = stream(bank_spec.seed, "texture-bank").random(20)
    for texture, (u, v), phi in zip(bank, bank_spec.frequencies, phases):
        spectrum = np.zeros((38, 38), dtype=complex)
        spectrum[u, v] = np.exp(2j * np.pi * phi)
        wave = np.fft.ifft2(spectrum).real
        wave -= wave.min()
        np.testing.assert_allclose(texture, wave / wave.max(), atol=2e-6)


def test_bank_phases_are_random_and_seeded(bank_spec):
    a = texture_bank(bank_spec.frequencies, 38, np.array([0.0] * 20))
    b = texture_bank(bank_spec.frequencies, 38, np.array([0.25] * 20))
    assert not np.array_equal(a, b)
    other = texture_mnist.spec_bank(with_overrides(bank_spec, seed=bank_spec.seed + 1))
    assert not np.array_equal(other, texture_mnist.spec_bank(bank_spec))


def test_crop_layers(bank):
    textures = np.array([[3, 7]])
    offsets = np.array([[[0, 10], [5, 2]]])
    layers = crop_layers(bank, textures, offsets, 28)
    np.testing.assert_array_equal(layers[0, 0], bank[3, 0:28, 10:38])
    np.testing.assert_array_equal(layers[0, 1], bank[7, 5:33, 2:30])


def _render(spec, split, mnist_dir):
    """(plan, data, source images, source labels) of a whole split."""
    source = spec.sources[split]
    images, labels = idx.load_mnist(mnist_dir, source.file)
    images, labels = images[source.start:source.stop], labels[source.start:source.stop]
    plan = texture_mnist.plan_split(spec, split)
    data = texture_mnist.render(spec, plan, texture_mnist.spec_bank(spec), images, labels, 0, spec.splits[split])
    return plan, data, images, labels


@pytest.fixture(scope="module")
def tm2(texture_spec, tiny_mnist_dir):
    spec = texture_spec("texture-mnist2", train=40)
    return (spec,) + _render(spec, "train", tiny_mnist_dir)


def test_textures_distinct_and_crops_in_range(tm2):
    spec, plan, data, _, _ = tm2
    assert data["textures"].shape == (40, 3)
    assert all(len(set(row)) == 3 for row in data["textures"])
    assert plan.offsets.min() >= 0 and plan.offsets.max() <= 10
    bank = texture_mnist.spec_bank(spec)
    b = 5
    for layer in range(3):
        (y, x), t = plan.offsets[b, layer], plan.textures[b, layer]
        np.testing.assert_array_equal(data["layers"][b, layer], bank[t, y:y + 28, x:x + 28])


def test_masks_sum_to_one_and_compose_the_image(tm2):
    _, _, data, _, _ = tm2
    masks, image = data["masks"], data["images"]
    assert masks.dtype == np.float32 and image.dtype == np.float32
    assert masks.min() >= 0 and masks.max() <= 1 and image.min() >= 0 and image.max() <= 1
    np.testing.assert_allclose(masks.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose((masks * data["layers"]).sum(axis=1), image[:, 0], atol=1e-5)


def test_shifts_z_order_and_label_order(tm2):
    _, plan, data, images, labels = tm2
    alpha = images.astype(np.float32) / 255
    first = np.zeros_like(alpha)
    first[:, :26, :26] = alpha[:, 2:, 2:]  # 2 px up and left
    second = np.zeros_like(alpha)
    second[:, 2:, 2:] = alpha[:, :26, :26]  # 2 px down and right
    shifted = np.stack([first[plan.sources[:, 0]], second[plan.sources[:, 1]]], axis=1)
    for b in range(40):
        on_top = plan.order[b, 1]
        below = plan.order[b, 0]
        # the top layer's mask is its digit's alpha; the lower digit is covered by it
        np.testing.assert_array_equal(data["masks"][b, 2], shifted[b, on_top])
        np.testing.assert_allclose(data["masks"][b, 1], shifted[b, below] * (1 - shifted[b, on_top]), atol=1e-7)
        assert list(data["labels"][b]) == [labels[plan.sources[b, below]], labels[plan.sources[b, on_top]]]
    assert data["labels"].dtype == np.int64


def test_segmentation_rule(tm2):
    _, _, data, _, _ = tm2
    masks, seg = data["masks"], data["segmentation"]
    scored = masks.max(axis=1) > 0.9
    assert (seg[~scored] == 255).all()
    np.testing.assert_array_equal(seg[scored], masks.argmax(axis=1)[scored])
    assert {0, 1, 2} <= set(np.unique(seg))


def test_coin_and_permutations_on_a_large_plan():
    spec = with_overrides(resolve_spec("texture-mnist2"), train=20000)
    plan = texture_mnist.plan_split(spec, "train")
    assert abs(plan.order[:, 0].mean() - 0.5) < 0.02  # fair coin for who is on top
    for j in range(2):
        assert len(np.unique(plan.sources[:, j])) == 20000  # a permutation: no repeats
    assert plan.sources.max() < 50000
    assert not np.array_equal(plan.sources[:, 0], plan.sources[:, 1])  # independent


def test_texture_mnist1_is_sequential_unshifted_and_unordered(texture_spec, tiny_mnist_dir):
    spec = texture_spec("texture-mnist1", train=25)
    plan, data, images, labels = _render(spec, "train", tiny_mnist_dir)
    np.testing.assert_array_equal(plan.sources[:, 0], np.arange(25))
    np.testing.assert_array_equal(data["labels"][:, 0], labels[:25])
    np.testing.assert_array_equal(data["masks"][:, 1], images[:25].astype(np.float32) / 255)
    assert data["masks"].shape == (25, 2, 28, 28)


def test_splits_use_their_mnist_ranges(texture_spec, tiny_mnist_dir):
    spec = texture_spec("texture-mnist1", train=30, valid=12, test=16)
    train_labels = idx.load_mnist(tiny_mnist_dir, "train")[1]
    test_labels = idx.load_mnist(tiny_mnist_dir, "test")[1]
    sources = {s.name: s for s in build.split_sources(spec, tiny_mnist_dir)}
    got = {name: np.concatenate([b["labels"] for b in s.blocks(7)])[:, 0] for name, s in sources.items()}
    np.testing.assert_array_equal(got["train"], train_labels[:30])
    np.testing.assert_array_equal(got["valid"], train_labels[40:52])
    np.testing.assert_array_equal(got["test"], test_labels[:16])


def test_real_mnist_ranges(real_mnist_dir):
    train_images, train_labels = idx.load_mnist(real_mnist_dir, "train")
    test_images, test_labels = idx.load_mnist(real_mnist_dir, "test")
    assert train_images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    assert list(np.bincount(train_labels)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    spec = with_overrides(resolve_spec("texture-mnist1"), train=20, valid=20, test=20)
    sources = {s.name: s for s in build.split_sources(spec, real_mnist_dir)}
    first = {name: next(s.blocks(20)) for name, s in sources.items()}
    np.testing.assert_array_equal(first["train"]["labels"][:, 0], train_labels[:20])
    np.testing.assert_array_equal(first["valid"]["labels"][:, 0], train_labels[50000:50020])
    np.testing.assert_array_equal(first["test"]["labels"][:, 0], test_labels[:20])
    # The images too, not only the labels: each split reads its own range of its own file.
    np.testing.assert_array_equal(first["train"]["masks"][:, 1], train_images[:20] / np.float32(255))
    np.testing.assert_array_equal(first["valid"]["masks"][:, 1], train_images[50000:50020] / np.float32(255))
    np.testing.assert_array_equal(first["test"]["masks"][:, 1], test_images[:20] / np.float32(255))


def test_binary_alpha_gives_hard_edges_over_the_same_draws(real_mnist_dir):
    """The diagnostic variant: digit pixels from intensity 128 up, every pixel one pure texture,
    every pixel scored, and the same textures, crops and digits as texture-mnist1."""
    sizes = dict(train=20, valid=0, test=0)
    soft = with_overrides(resolve_spec("texture-mnist1"), **sizes)
    hard = with_overrides(resolve_spec("texture-mnist1-binary"), **sizes)
    soft_plan, soft_data, images, _ = _render(soft, "train", real_mnist_dir)
    hard_plan, hard_data, _, _ = _render(hard, "train", real_mnist_dir)
    for field in ("textures", "offsets", "sources", "order"):
        np.testing.assert_array_equal(getattr(hard_plan, field), getattr(soft_plan, field))
    np.testing.assert_array_equal(hard_data["layers"], soft_data["layers"])
    np.testing.assert_array_equal(hard_data["masks"][:, 1], (images[:20] >= 128).astype(np.float32))
    chosen = np.where(hard_data["masks"][:, 1] == 1, hard_data["layers"][:, 1], hard_data["layers"][:, 0])
    np.testing.assert_array_equal(hard_data["images"][:, 0], chosen)
    assert (hard_data["segmentation"] != 255).all()  # no blended pixel left unscored
    assert 0 < ((images[:20] > 0) & (images[:20] < 255)).mean()  # the real digits do have soft edges
