"""Metrics against scikit-learn (per example, 1e-6) and hand-made classification cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from tagmodels import metrics
from tagmodels.metrics import (
    ami,
    ari,
    fg_ari,
    grouping_scores,
    msc,
    mixture_targets,
    top1_error,
    top2_error,
)

TOL = 1e-6


METHODS = ("max", "arithmetic")  # the paper's normalisation, and scikit-learn's default since 0.22


def sklearn_scores(true: np.ndarray, pred: np.ndarray, scored: np.ndarray, method: str) -> dict:
    """The oracle: sklearn on each example's scored pixels; NaN where none is scored."""
    true, pred, scored = (x.reshape(x.shape[0], -1) for x in (true, pred, scored))
    out = {"ami": [], "ari": []}
    for t, p, s in zip(true, pred, scored):
        empty = not s.any()
        out["ami"].append(np.nan if empty else adjusted_mutual_info_score(t[s], p[s], average_method=method))
        out["ari"].append(np.nan if empty else adjusted_rand_score(t[s], p[s]))
    return {name: np.array(values) for name, values in out.items()}


def assert_matches_sklearn(true, pred, scored) -> None:
    """Both AMI normalisations and the ARI agree with scikit-learn on every example."""
    for method in METHODS:
        expected = sklearn_scores(np.asarray(true), np.asarray(pred), np.asarray(scored), method)
        got = {"ami": ami(true, pred, scored, average_method=method), "ari": ari(true, pred, scored)}
        for name in ("ami", "ari"):
            assert got[name].dtype == np.float64
            assert got[name].shape == expected[name].shape
            np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(expected[name]))
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=TOL, err_msg=f"{name} {method}")


def random_batch(rng: np.random.Generator, batch: int, pixels: int):
    """Examples with 1..6 groups per side, random sizes and random scored fractions."""
    n_true = rng.integers(1, 7, (batch, 1))
    n_pred = rng.integers(1, 7, (batch, 1))
    true = rng.integers(0, n_true, (batch, pixels))
    # Predictions partly copy the truth so that high scores are covered too.
    copy = rng.random((batch, pixels)) < rng.random((batch, 1))
    pred = np.where(copy, true % n_pred, rng.integers(0, n_pred, (batch, pixels)))
    scored = rng.random((batch, pixels)) < rng.choice([0.0, 0.1, 0.5, 0.9, 1.0], (batch, 1))
    return true, pred, scored


@pytest.mark.parametrize("seed, pixels", [(0, 1), (1, 3), (2, 12), (3, 40), (4, 150)])
def test_random_batches_match_sklearn(seed: int, pixels: int) -> None:
    true, pred, scored = random_batch(np.random.default_rng(seed), 600, pixels)
    assert_matches_sklearn(true, pred, scored)


def test_full_size_images_with_skewed_groups_match_sklearn() -> None:
    """28x28 examples with big groups: wide n_ij ranges in the expected MI."""
    rng = np.random.default_rng(5)
    batch = 60
    bounds = np.cumsum(rng.dirichlet(np.full(4, 0.5), batch), axis=1)[:, None, :]
    true = (rng.random((batch, 784, 1)) > bounds).sum(-1).clip(0, 3)
    noise = (rng.random((batch, 784, 1)) > bounds[:, :, ::-1]).sum(-1).clip(0, 3)
    pred = np.where(rng.random((batch, 784)) < rng.random((batch, 1)), true, noise)
    scored = rng.random((batch, 784)) < rng.uniform(0.2, 1.0, (batch, 1))
    assert_matches_sklearn(true.reshape(batch, 28, 28), pred.reshape(batch, 28, 28),
                           scored.reshape(batch, 28, 28))


def degenerate_batch():
    """One example per row, padded with unscored pixels whose labels must not count."""
    cases = [
        ([0], [0]),  # one pixel
        ([0, 0], [1, 1]),  # single groups both sides
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # single true group
        ([2, 0, 1, 3], [5, 5, 5, 5]),  # single predicted group
        ([0, 1], [0, 1]),  # all singletons, both sides
        ([0, 1], [1, 0]),
        (list(range(30)), list(np.random.default_rng(0).permutation(30))),
        (list(range(30)), [0] * 15 + [1] * 15),  # all singletons on one side
        ([0] * 15 + [1] * 15, list(range(30))),
        ([0, 0, 1, 1, 2, 2], [3, 3, 1, 1, 0, 0]),  # perfect match, relabelled
        ([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1]),  # independent-looking
        ([0, 0, 1], [0, 1, 1]),
        ([0, 1, 2], [0, 0, 1]),
        ([], []),  # nothing scored
    ]
    width = max(len(t) for t, _ in cases) + 3
    true = np.full((len(cases), width), 7)
    pred = np.full((len(cases), width), 9)
    scored = np.zeros((len(cases), width), dtype=bool)
    for row, (t, p) in enumerate(cases):
        true[row, : len(t)], pred[row, : len(p)], scored[row, : len(t)] = t, p, True
    return true, pred, scored


def test_degenerate_cases_match_sklearn() -> None:
    true, pred, scored = degenerate_batch()
    assert_matches_sklearn(true, pred, scored)
    got = ami(true, pred, scored)
    np.testing.assert_allclose(got[[0, 1, 4, 5, 6, 9]], 1.0, atol=TOL)
    np.testing.assert_allclose(got[[2, 3]], 0.0, atol=TOL)
    assert np.isnan(got[-1]) and np.isnan(ari(true, pred, scored)[-1])


def test_the_default_ami_is_the_papers_max_normalisation() -> None:
    """An imperfect grouping: the max-normalised AMI (the paper's) is the lower one."""
    true = np.array([[0] * 10 + [1] * 10])
    pred = np.array([[0] * 10 + [1] * 5 + [2] * 5])  # the second object split in two
    scored = np.ones_like(true, dtype=bool)
    default = ami(true, pred, scored)
    np.testing.assert_allclose(default, adjusted_mutual_info_score(true[0], pred[0], average_method="max"), atol=TOL)
    assert default[0] < ami(true, pred, scored, average_method="arithmetic")[0] - 0.05
    scores = grouping_scores(true.reshape(1, 4, 5), np.eye(3)[pred].transpose(0, 2, 1))
    np.testing.assert_allclose(scores["ami"], default, atol=TOL)
    with pytest.raises(ValueError, match="average_method"):
        ami(true, pred, scored, average_method="mean")


def test_all_singletons_both_sides_for_many_sizes() -> None:
    rng = np.random.default_rng(6)
    sizes = np.arange(1, 60)
    true = np.tile(np.arange(60), (sizes.size, 1))
    pred = np.array([rng.permutation(60) for _ in sizes])
    scored = true < sizes[:, None]
    assert_matches_sklearn(true, pred, scored)


def test_arbitrary_label_values_match_sklearn() -> None:
    """Negative and huge labels take the np.unique path; small ones the lookup table."""
    rng = np.random.default_rng(7)
    true, pred, scored = random_batch(rng, 200, 25)
    values = np.array([-5, 3, 10**9, 17, 2**40, -(2**33), 0])
    assert_matches_sklearn(values[true], values[pred] * 3, scored)
    assert_matches_sklearn(true.astype(np.uint8) + 250, pred.astype(np.int16), scored)


def test_torch_inputs_and_nanmean() -> None:
    true, pred, scored = random_batch(np.random.default_rng(8), 300, 20)
    for fn in (ami, ari):
        from_torch = fn(torch.from_numpy(true), torch.from_numpy(pred), torch.from_numpy(scored))
        np.testing.assert_array_equal(from_torch, fn(true, pred, scored))
    scores = ami(true, pred, scored)
    assert np.isnan(scores).any() and np.isfinite(np.nanmean(scores))
    assert np.nanmean(scores) == pytest.approx(scores[~np.isnan(scores)].mean())


def test_scores_do_not_depend_on_chunking(monkeypatch) -> None:
    true, pred, scored = random_batch(np.random.default_rng(9), 400, 60)
    whole = {"ami": ami(true, pred, scored), "ari": ari(true, pred, scored)}
    monkeypatch.setattr(metrics, "_PIXEL_CHUNK", 7 * 60)
    monkeypatch.setattr(metrics, "_EMI_BLOCK", 50)
    np.testing.assert_allclose(ami(true, pred, scored), whole["ami"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ari(true, pred, scored), whole["ari"])
    alone = np.concatenate([ami(true[i : i + 1], pred[i : i + 1], scored[i : i + 1])
                            for i in range(0, 400, 37)])
    np.testing.assert_allclose(alone, whole["ami"][::37], rtol=0, atol=1e-12)


def test_empty_batch_and_bad_inputs() -> None:
    empty = np.zeros((0, 5), dtype=int)
    assert ami(empty, empty, empty.astype(bool)).shape == (0,)
    labels = np.zeros((2, 5), dtype=int)
    with pytest.raises(ValueError):
        ari(labels, labels[:, :4], labels.astype(bool))
    with pytest.raises(TypeError):
        ami(labels.astype(float), labels, labels.astype(bool))


def one_hot_groups(pred: np.ndarray, k: int) -> np.ndarray:
    """(B, H, W) group labels -> soft-looking (B, K, H, W) assignments with that argmax."""
    m = np.full((*pred.shape, k), 0.1 / k, dtype=np.float32)
    np.put_along_axis(m, pred[..., None], 0.9, axis=-1)
    return np.moveaxis(m, -1, 1)


def test_grouping_scores_flattening_and_ignore_value() -> None:
    rng = np.random.default_rng(10)
    batch, h, w, k = 30, 5, 7, 4
    seg = rng.integers(0, 3, (batch, h, w)).astype(np.uint8)
    pred = np.where(rng.random((batch, h, w)) < 0.7, seg, rng.integers(0, k, (batch, h, w)))
    seg[rng.random((batch, h, w)) < 0.3] = 255
    m = one_hot_groups(pred, k)
    expected = sklearn_scores(seg, pred, seg != 255, "max")
    for groups in (m, m.reshape(batch, k, h * w), torch.from_numpy(m)):
        got = grouping_scores(seg, groups)
        assert set(got) == {"ami", "ari", "fg_ari", "msc"}
        for name in ("ami", "ari"):
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=TOL)
        np.testing.assert_array_equal(got["fg_ari"], fg_ari(seg, pred, seg != 255))
        np.testing.assert_array_equal(got["msc"], msc(seg, pred, seg != 255))


def test_fg_ari_is_sklearns_ari_over_the_scored_foreground() -> None:
    """Random batches, background label 0 (and, for another data's convention, 2) left out."""
    rng = np.random.default_rng(11)
    true, pred, scored = random_batch(rng, 200, 60)
    for background in (0, 2):
        expected = []
        for t, p, s in zip(true, pred, scored):
            keep = s & (t != background)
            expected.append(adjusted_rand_score(t[keep], p[keep]) if keep.any() else np.nan)
        got = fg_ari(true, pred, scored, background=background)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert np.isnan(expected).any() and not np.isnan(expected).all()  # the batch covers empty foregrounds


def test_fg_ari_ignores_how_the_background_is_grouped() -> None:
    """Objects split perfectly, background merged with an object: ARI suffers, FG-ARI does not."""
    true = np.array([[0, 0, 0, 0, 1, 1, 2, 2]])
    pred = np.array([[1, 1, 1, 1, 1, 1, 2, 2]])
    scored = np.ones_like(true, dtype=bool)
    assert fg_ari(true, pred, scored)[0] == 1.0
    assert ari(true, pred, scored)[0] < 0.5
    assert np.isnan(fg_ari(np.zeros((1, 4), np.int64), np.zeros((1, 4), np.int64), np.ones((1, 4), bool))[0])


def test_msc_by_hand() -> None:
    """Two objects of 4 and 2 pixels beside 2 background pixels (label 0), one unscored pixel (255).

    Prediction: object 1 split 3 + 1, with its lone pixel grouped with object 2; so object 1's
    best IoU is 3/4 (the group of 3) and object 2's is 2/3 (group of 3 holding it): mSC (3/4 + 2/3) / 2.
    With the background a segment too (background=None): background wholly its own group, IoU 1."""
    true = np.array([[1, 1, 1, 1, 2, 2, 0, 0, 255]])
    pred = np.array([[5, 5, 5, 7, 7, 7, 3, 3, 7]])
    scored = true != 255
    assert msc(true, pred, scored)[0] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert msc(true, pred, scored, background=None)[0] == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)
    perfect = msc(true, true, scored)[0]
    assert perfect == 1.0
    assert np.isnan(msc(true, pred, np.zeros_like(scored))[0])


def test_msc_is_the_unweighted_mean_of_best_ious_per_example() -> None:
    """A loop over examples and segments (the definition) against the vectorised one."""
    rng = np.random.default_rng(12)
    true, pred, scored = random_batch(rng, 120, 50)
    got = msc(true, pred, scored)
    for t, p, s, value in zip(true, pred, scored, got):
        keep = s & (t != 0)
        if not keep.any():
            assert np.isnan(value)
            continue
        best = [max(np.sum((t[keep] == g) & (p[keep] == q)) / np.sum((t[keep] == g) | (p[keep] == q))
                    for q in np.unique(p[keep])) for g in np.unique(t[keep])]
        assert value == pytest.approx(np.mean(best), abs=TOL)


def test_grouping_scores_perfect_only_with_row_major_pixels() -> None:
    seg = np.repeat(np.arange(4, dtype=np.uint8), 4).reshape(1, 4, 4)  # one label per row
    m = one_hot_groups(seg.astype(np.int64), 4)
    assert grouping_scores(seg, m.reshape(1, 4, 16))["ami"][0] == pytest.approx(1.0)
    transposed = np.ascontiguousarray(m.transpose(0, 1, 3, 2)).reshape(1, 4, 16)
    assert grouping_scores(seg, transposed)["ami"][0] < 0.0 + TOL
    assert grouping_scores(seg, transposed)["ari"][0] < 0.0 + TOL
    all_ignored = np.full_like(seg, 255)
    assert np.isnan(grouping_scores(all_ignored, m)["ami"][0])


def test_top1_error_with_ties_to_lowest_class() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.5], [0.3, 0.3, 0.3], [0.0, 0.2, 0.8]])
    targets = np.array([1, 2, 0, 0])
    np.testing.assert_array_equal(top1_error(scores, targets), [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(
        top1_error(torch.tensor(scores), torch.tensor(targets)), [0.0, 1.0, 0.0, 1.0]
    )


def test_top2_error_hand_made_cases() -> None:
    scores = np.array(
        [
            [0.0, 0.9, 0.1, 0.0, 0.0],  # equal digits 1,1, top-1 is 1: right
            [0.0, 0.4, 0.6, 0.0, 0.0],  # equal digits 1,1, 1 only second: wrong
            [0.1, 0.5, 0.0, 0.4, 0.0],  # digits 1,3 both in top 2
            [0.1, 0.5, 0.0, 0.4, 0.0],  # digits 3,4: one of two found
            [0.1, 0.5, 0.0, 0.4, 0.0],  # digits 0,2: none found
            [0.2, 0.2, 0.2, 0.2, 0.2],  # all tied: top 2 are classes 0,1
            [0.2, 0.2, 0.2, 0.2, 0.2],
        ]
    )
    targets = np.array([[1, 1], [1, 1], [3, 1], [3, 4], [0, 2], [1, 0], [2, 3]])
    expected = [0.0, 1.0, 0.0, 0.5, 1.0, 0.0, 1.0]
    np.testing.assert_array_equal(top2_error(scores, targets), expected)
    np.testing.assert_array_equal(top2_error(torch.tensor(scores), torch.tensor(targets)), expected)


def test_mixture_targets() -> None:
    two = mixture_targets(np.array([[3, 7], [5, 5], [0, 9]]))
    expected = np.zeros((3, 10), dtype=np.float32)
    expected[0, [3, 7]] = 0.5
    expected[1, 5] = 1.0
    expected[2, [0, 9]] = 0.5
    assert two.dtype == np.float32
    np.testing.assert_array_equal(two, expected)
    one = mixture_targets(torch.tensor([2, 0]), n_classes=4)
    np.testing.assert_array_equal(one, [[0, 0, 1, 0], [1, 0, 0, 0]])
