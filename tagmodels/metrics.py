"""Grouping and classification metrics, vectorised over whole test sets.

Grouping quality is scored per example, over the scored pixels only, with the adjusted
mutual information (AMI; Vinh, Epps & Bailey 2010, "Information theoretic measures for
clusterings comparison", JMLR 11) and the adjusted Rand index (ARI; Hubert & Arabie 1985).
The AMI normalises by the larger of the two entropies by default, ``(MI - E[MI]) /
(max(H(true), H(pred)) - E[MI])``: the definition scikit-learn 0.17 computed when the paper
scored its Table 1 (Section 3.1). scikit-learn 0.22 and later default to the arithmetic
mean of the entropies, which scores every imperfect grouping higher; pass
``average_method="arithmetic"`` for that one. Every JSON this toolkit writes with an AMI
names its normalisation. Both agree with scikit-learn on every example, degenerate
ones included; an example with no scored pixel scores NaN, so ``np.nanmean`` averages over
the scorable examples only.

Two scores object-centric work reports beside them, so that figures compare with its
tables: the foreground ARI (FG-ARI; Greff et al. 2019, Locatello et al. 2020), the ARI over
the scored pixels whose true label is not the background's, and the mean segmentation
covering (mSC; Engelcke et al. 2020, GENESIS), for each true segment the best
intersection-over-union with a predicted group, averaged over the true segments with equal
weight (unweighted), over the same foreground pixels. Unscored pixels (the datasets mark
them 255: Shapes' background and overlaps, TextureMNIST's soft digit edges) are left out of
every score; the background is label 0 in every tagdata set (scored in TextureMNIST,
unscored in Shapes, where FG-ARI therefore equals the ARI).

Classification is scored per example as top-1 error (one-digit data) and top-2 error
(two-digit data). Ties between class scores are broken towards the lowest class index.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

# Elements per (cells, n_ij) block of the expected-mutual-information sum: 2**21 float64
# values are 16 MiB per temporary, which bounds memory whatever the batch size.
_EMI_BLOCK = 1 << 21
# Pixels per chunk of examples scored together (see _score_in_chunks).
_PIXEL_CHUNK = 1 << 20
AMI_AVERAGE_METHODS = ("max", "arithmetic", "geometric", "min")  # scikit-learn's names
PAPER_AMI_AVERAGE = "max"  # the normalisation of the paper's AMI figures


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """Accept torch tensors (any device, bf16 from autocast included) as well as numpy arrays."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bfloat16:  # numpy has no bfloat16
            x = x.float()
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Map integer labels to 0..U-1 (U distinct values), order preserved.

    A presence table is ~6x faster than ``np.unique`` on millions of pixels; it is used
    whenever the label span is no larger than the number of values, so its memory stays
    bounded by the input's.
    """
    if values.size == 0:
        return values.astype(np.int64), 0
    low = int(values.min())
    span = int(values.max()) - low + 1
    if span > values.size:
        uniques, codes = np.unique(values, return_inverse=True)
        return codes.reshape(-1), uniques.size
    shifted = values.astype(np.int64) - low
    present = np.zeros(span, dtype=bool)
    present[shifted] = True
    remap = np.cumsum(present) - 1
    return remap[shifted], int(remap[-1]) + 1


def _contingency_tables(true: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-example contingency tables (B, L, K) of the scored pixels, int64.

    L and K count the distinct true and predicted labels in the whole batch, so a given
    example may have empty rows or columns; every score here ignores them.
    """
    batch = true.shape[0]
    pixels = math.prod(true.shape[1:])
    mask = mask.reshape(batch, pixels).astype(bool)
    example = np.broadcast_to(np.arange(batch)[:, None], mask.shape)[mask]
    true_codes, n_true = _dense_codes(true.reshape(batch, pixels)[mask])
    pred_codes, n_pred = _dense_codes(pred.reshape(batch, pixels)[mask])
    n_true, n_pred = max(n_true, 1), max(n_pred, 1)
    cell = (example * n_true + true_codes) * n_pred + pred_codes
    counts = np.bincount(cell, minlength=batch * n_true * n_pred)
    return counts.reshape(batch, n_true, n_pred).astype(np.int64)


def _log_factorials(n_max: int) -> np.ndarray:
    """log(k!) for k = 0..n_max.

    math.lgamma per entry is exact to double precision and keeps scipy out of the
    dependencies; the table has one entry per pixel count, so building it is cheap.
    """
    return np.fromiter((math.lgamma(k + 1.0) for k in range(n_max + 1)), np.float64)


def _xlogx_sum(counts: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Sum of c*log(c) over the given axes, with 0*log(0) = 0."""
    c = counts.astype(np.float64)
    return (c * np.log(np.where(c > 0, c, 1.0))).sum(axis=axes)


def _emi_cell_block(
    n: np.ndarray, a: np.ndarray, b: np.ndarray, log_fact: np.ndarray
) -> np.ndarray:
    """EMI contribution of each cell (n, a, b) of a block, summed over its n_ij range.

    Vinh et al. 2010, eq. 24: sum over n_ij from max(1, a+b-n) to min(a, b) of
    n_ij/n * log(n*n_ij / (a*b)) * P(n_ij), P the hypergeometric probability, taken in
    log space. The n_ij range is padded to the block's widest cell and masked.
    """
    low = np.maximum(1, a + b - n)
    high = np.minimum(a, b)
    nij = low[:, None] + np.arange(int((high - low).max()) + 1)
    valid = nij <= high[:, None]
    nij = np.where(valid, nij, low[:, None])
    log_cell = log_fact[a] + log_fact[b] + log_fact[n - a] + log_fact[n - b] - log_fact[n]
    log_prob = (
        log_cell[:, None]
        - log_fact[nij]
        - log_fact[a[:, None] - nij]
        - log_fact[b[:, None] - nij]
        - log_fact[(n - a - b)[:, None] + nij]
    )
    log_ratio = np.log(nij) + (np.log(n) - np.log(a) - np.log(b))[:, None]
    terms = nij * log_ratio * np.exp(log_prob)
    return np.where(valid, terms, 0.0).sum(axis=1) / n


def _block_ends(sorted_widths: np.ndarray) -> list[int]:
    """Split width-sorted cells into blocks whose padded size stays within _EMI_BLOCK."""
    ends, start = [], 0
    while start < sorted_widths.size:
        padded = np.arange(1, sorted_widths.size - start + 1) * sorted_widths[start:]
        start += max(1, int(np.searchsorted(padded, _EMI_BLOCK, side="right")))
        ends.append(start)
    return ends


def _expected_mutual_info(tables: np.ndarray) -> np.ndarray:
    """EMI (nats) per example under the permutation model, shape (B,).

    Cells are deduplicated on (n, a_i, b_j), since their contribution depends on nothing
    else, then summed in blocks sorted by n_ij range so the padding wastes little.
    """
    a = tables.sum(axis=2)
    b = tables.sum(axis=1)
    n = a.sum(axis=1)
    shape = tables.shape
    triples = np.stack(
        [
            np.broadcast_to(n[:, None, None], shape).ravel(),
            np.broadcast_to(a[:, :, None], shape).ravel(),
            np.broadcast_to(b[:, None, :], shape).ravel(),
        ],
        axis=1,
    )
    occupied = (triples[:, 1] > 0) & (triples[:, 2] > 0)
    cells, inverse = np.unique(triples[occupied], axis=0, return_inverse=True)
    contribution = np.zeros(len(cells))
    if len(cells):
        log_fact = _log_factorials(int(n.max()))
        cn, ca, cb = cells.T
        widths = np.minimum(ca, cb) - np.maximum(1, ca + cb - cn) + 1
        order = np.argsort(widths, kind="stable")
        start = 0
        for end in _block_ends(widths[order]):
            rows = order[start:end]
            contribution[rows] = _emi_cell_block(cn[rows], ca[rows], cb[rows], log_fact)
            start = end
    per_cell = np.zeros(occupied.size)
    per_cell[occupied] = contribution[inverse.reshape(-1)]
    return per_cell.reshape(shape[0], -1).sum(axis=1)


def _entropy_average(h_true: np.ndarray, h_pred: np.ndarray, method: str) -> np.ndarray:
    """The normaliser of the AMI: the max (the paper's), arithmetic, geometric mean or min."""
    if method == "max":
        return np.maximum(h_true, h_pred)
    if method == "arithmetic":
        return (h_true + h_pred) / 2
    if method == "geometric":
        return np.sqrt(h_true * h_pred)
    if method == "min":
        return np.minimum(h_true, h_pred)
    raise ValueError(f"unknown average_method {method!r}: choose one of {', '.join(AMI_AVERAGE_METHODS)}")


def _ami_from_tables(tables: np.ndarray, average_method: str = PAPER_AMI_AVERAGE) -> np.ndarray:
    """AMI per example (Vinh et al. 2010): (MI - EMI) / (average(H_U, H_V) - EMI).

    Degenerate examples follow scikit-learn: no scored pixel -> NaN; a single true and a
    single predicted group -> 1; exactly one side a single group -> 0; every pixel its
    own group on both sides (n >= 2) -> 1, where numerator and denominator both vanish.
    """
    a = tables.sum(axis=2)
    b = tables.sum(axis=1)
    n = a.sum(axis=1).astype(np.float64)
    n_true = (a > 0).sum(axis=1)
    n_pred = (b > 0).sum(axis=1)
    safe_n = np.maximum(n, 1.0)
    log_n = np.log(safe_n)
    h_true = log_n - _xlogx_sum(a, (1,)) / safe_n
    h_pred = log_n - _xlogx_sum(b, (1,)) / safe_n
    # MI = sum n_ij/n log(n n_ij / (a_i b_j)) expanded into xlogx sums of the margins.
    mi = _xlogx_sum(tables, (1, 2)) / safe_n - log_n + h_true + h_pred
    emi = _expected_mutual_info(tables)
    denominator = _entropy_average(h_true, h_pred, average_method) - emi
    regular = (n_true > 1) & (n_pred > 1) & ~((n_true == n) & (n_pred == n))
    score = np.divide(mi - emi, denominator, out=np.zeros_like(n), where=regular)
    score[(n_true == n) & (n_pred == n) & (n > 1)] = 1.0
    score[(n_true == 1) & (n_pred == 1)] = 1.0
    score[n == 0] = np.nan
    return score


def _ari_from_tables(tables: np.ndarray) -> np.ndarray:
    """ARI per example from pair counts; NaN without scored pixels.

    Ordered pair counts are exact int64; the final ratio is taken in float64 so that
    products of pair counts cannot overflow. Identical partitions score 1 exactly; the
    ratio is 0/0 only for those (one pixel, one group each, all singletons each).
    """
    n = tables.sum(axis=(1, 2))
    same_both = (tables**2).sum(axis=(1, 2)) - n
    same_true = (tables.sum(axis=2) ** 2).sum(axis=1) - n
    same_pred = (tables.sum(axis=1) ** 2).sum(axis=1) - n
    pairs = (n * (n - 1)).astype(np.float64)
    chance = same_true.astype(np.float64) * same_pred
    numerator = same_both * pairs - chance
    denominator = (same_true + same_pred) / 2 * pairs - chance
    score = np.divide(numerator, denominator, out=np.ones_like(pairs), where=denominator != 0)
    score[n == 0] = np.nan
    return score


def _msc_from_tables(tables: np.ndarray) -> np.ndarray:
    """Mean segmentation covering per example: the unweighted mean over true segments of
    their best IoU n_ij / (a_i + b_j - n_ij) with a predicted group; NaN without scored pixels."""
    a = tables.sum(axis=2)
    b = tables.sum(axis=1)
    union = a[:, :, None] + b[:, None, :] - tables
    iou = np.divide(tables, union, out=np.zeros(tables.shape), where=union > 0)
    present = a > 0
    segments = present.sum(axis=1)
    best = np.where(present, iou.max(axis=2), 0.0).sum(axis=1)
    return np.divide(best, segments, out=np.full(len(tables), np.nan), where=segments > 0)


def _checked_inputs(
    true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fail early on what would otherwise be silently misread: shapes, float labels."""
    true, pred, mask = _to_numpy(true_labels), _to_numpy(pred_labels), _to_numpy(scored)
    if not (true.shape == pred.shape == mask.shape) or true.ndim < 2:
        raise ValueError(
            "true_labels, pred_labels and scored need one shape (B, P) or (B, H, W); got "
            f"{true.shape}, {pred.shape}, {mask.shape}"
        )
    for name, labels in (("true_labels", true), ("pred_labels", pred)):
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
            raise TypeError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    return true, pred, mask


SCORES = ("ami", "ari", "fg_ari", "msc")  # every grouping score, by its key in JSON
_FOREGROUND_SCORES = ("fg_ari", "msc")  # scored over the pixels whose true label is not the background's


def _score_in_chunks(
    true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike, names: tuple[str, ...],
    average_method: str = PAPER_AMI_AVERAGE, background: int | None = 0,
) -> dict[str, np.ndarray]:
    """Score examples in chunks of about _PIXEL_CHUNK pixels.

    Every score is per example, so chunks are independent; small chunks keep the
    temporaries small and reused, which in a fresh process is several times faster than
    one pass over a whole test set (there, page faults on fresh memory dominate). The
    foreground scores count the table of the scored pixels whose true label is not
    ``background`` (None: every scored pixel).
    """
    true, pred, mask = _checked_inputs(true_labels, pred_labels, scored)
    _entropy_average(np.zeros(1), np.zeros(1), average_method)  # an unknown name fails before any work
    scorers = {"ami": lambda tables: _ami_from_tables(tables, average_method), "ari": _ari_from_tables,
               "fg_ari": _ari_from_tables, "msc": _msc_from_tables}
    foreground = mask.astype(bool) if background is None else mask.astype(bool) & (true != background)
    pixels = {"scored": mask, "foreground": foreground}
    among_of = {name: "foreground" if name in _FOREGROUND_SCORES else "scored" for name in names}
    needed = set(among_of.values())
    step = max(1, _PIXEL_CHUNK // max(1, math.prod(true.shape[1:])))
    parts: dict[str, list[np.ndarray]] = {name: [np.zeros(0)] for name in names}
    for start in range(0, true.shape[0], step):
        rows = slice(start, start + step)
        tables = {among: _contingency_tables(true[rows], pred[rows], pixels[among][rows]) for among in needed}
        for name in names:
            parts[name].append(scorers[name](tables[among_of[name]]))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def ami(
    true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike, average_method: str = PAPER_AMI_AVERAGE
) -> np.ndarray:
    """Adjusted mutual information per example over its scored pixels, float64 (B,).

    Inputs are integer labels (B, P) or (B, H, W) and a same-shape bool mask; equals
    sklearn.metrics.adjusted_mutual_info_score(..., average_method=average_method) per
    example. The default "max" is the paper's normalisation. NaN where nothing is scored.
    """
    return _score_in_chunks(true_labels, pred_labels, scored, ("ami",), average_method)["ami"]


def ari(true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike) -> np.ndarray:
    """Adjusted Rand index per example over its scored pixels, float64 (B,).

    Same inputs as :func:`ami`; equals sklearn.metrics.adjusted_rand_score per example.
    NaN where nothing is scored.
    """
    return _score_in_chunks(true_labels, pred_labels, scored, ("ari",))["ari"]


def fg_ari(true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike, background: int = 0) -> np.ndarray:
    """Foreground ARI per example, float64 (B,): :func:`ari` over the scored pixels whose true
    label is not ``background``. NaN where no foreground pixel is scored."""
    return _score_in_chunks(true_labels, pred_labels, scored, ("fg_ari",), background=background)["fg_ari"]


def msc(true_labels: ArrayLike, pred_labels: ArrayLike, scored: ArrayLike, background: int | None = 0) -> np.ndarray:
    """Mean segmentation covering per example, float64 (B,), in [0, 1] (GENESIS's mSC): for each
    true segment of the scored foreground pixels (true label not ``background``; None keeps
    the background as a segment) the largest IoU with a predicted group, averaged over the
    true segments unweighted. NaN where no such pixel is scored."""
    return _score_in_chunks(true_labels, pred_labels, scored, ("msc",), background=background)["msc"]


def grouping_scores(
    segmentation: ArrayLike, m: ArrayLike, ignore_value: int = 255, average_method: str = PAPER_AMI_AVERAGE,
    background: int = 0,
) -> dict[str, np.ndarray]:
    """AMI, ARI, FG-ARI and mSC per example of Tagger's groups against a dataset segmentation.

    segmentation is (B, H, W) with ``ignore_value`` on unscored pixels and ``background`` on
    the background's; m is (B, K, H, W) or (B, K, N) with N = H*W in row-major order. The
    predicted group of a pixel is its argmax over K (first maximum on ties). One contingency
    table serves AMI and ARI, one of the foreground pixels FG-ARI and mSC.
    """
    seg = _to_numpy(segmentation)
    groups = m.argmax(dim=1) if isinstance(m, torch.Tensor) else np.asarray(m).argmax(axis=1)
    groups = _to_numpy(groups)
    pred = groups.reshape(groups.shape[0], math.prod(groups.shape[1:]))
    true = seg.reshape(seg.shape[0], math.prod(seg.shape[1:]))
    if pred.shape != true.shape:
        raise ValueError(
            f"m gives (examples, pixels) {pred.shape}, segmentation gives {true.shape}"
        )
    return _score_in_chunks(true, pred, true != ignore_value, SCORES, average_method, background)


def _ranked_classes(scores: ArrayLike) -> np.ndarray:
    """Classes by decreasing score; stable, so ties go to the lowest class index."""
    values = _to_numpy(scores).astype(np.float64)
    return np.argsort(-values, axis=1, kind="stable")


def top1_error(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Per-example top-1 error (0 or 1), float64 (B,), for one-digit data."""
    best = _ranked_classes(scores)[:, 0]
    return (best != _to_numpy(targets).reshape(-1)).astype(np.float64)


def top2_error(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Per-example top-2 error, float64 (B,), for two-digit data with targets (B, 2).

    Two equal digits: right iff the top-1 class is that digit (0 or 1). Two different
    digits: the fraction of them missing from the two highest-scored classes (0, 0.5, 1).
    """
    top = _ranked_classes(scores)[:, :2]
    labels = _to_numpy(targets)
    found = (labels[:, :, None] == top[:, None, :]).any(axis=2)
    error = 1.0 - found.mean(axis=1)
    same = labels[:, 0] == labels[:, 1]
    error[same] = (top[same, 0] != labels[same, 0]).astype(np.float64)
    return error


def mixture_targets(targets: ArrayLike, n_classes: int = 10) -> np.ndarray:
    """Target distribution per example, float32 (B, n_classes).

    targets (B,) gives one-hot rows; targets (B, D) gives the equal mixture of the D
    labels (the 50/50 mixture for two digits; one-hot when both digits agree).
    """
    labels = _to_numpy(targets)
    labels = labels.reshape(labels.shape[0], -1)
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    rows = np.arange(labels.shape[0])
    for column in labels.T:
        out[rows, column] += 1.0 / labels.shape[1]
    return out
