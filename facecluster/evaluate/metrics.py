"""Evaluation metrics for face clustering.

Three groups of plain functions (arrays in, numbers or dicts out):

* clustering quality against ground-truth identities: pairwise and BCubed
  precision/recall/F, NMI and ARI (:func:`clustering_report`);
* embedding quality independent of any clustering: verification ROC AUC,
  TAR at fixed FAR and the equal error rate (:func:`verification_report`);
* box matching for labelled group photos (:func:`iou`, :func:`match_boxes`).

Noise rule: a predicted label of ``-1`` means "unknown". Every such face is
counted as its own singleton cluster, so two unknown faces are never a
predicted pair (see :func:`noise_as_singletons`).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist
from sklearn.metrics import (
    adjusted_rand_score,
    auc,
    normalized_mutual_info_score,
    roc_curve,
)

from facecluster.boxes import iou, iou_matrix  # noqa: F401 (iou: part of this module's API)

NOISE = -1
DEFAULT_MAX_PAIRS = 5_000_000

__all__ = [
    "noise_as_singletons",
    "pairwise_prf",
    "bcubed_prf",
    "clustering_report",
    "pair_distances",
    "tar_at_far",
    "equal_error_rate",
    "verification_report",
    "iou",
    "match_boxes",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _encode(labels) -> np.ndarray:
    """Map arbitrary hashable labels to ints 0..k-1 (first-occurrence order)."""
    index: dict = {}
    labels = list(labels)
    return np.fromiter(
        (index.setdefault(x, len(index)) for x in labels),
        dtype=np.int64,
        count=len(labels),
    )


def _as_int_labels(pred) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim != 1:
        raise ValueError("pred must be a 1-d array of cluster labels")
    if pred.size and pred.dtype.kind not in "iu":
        raise ValueError(f"pred must hold integer labels, got dtype {pred.dtype}")
    return pred.astype(np.int64)


def _prf(precision: float, recall: float) -> tuple[float, float, float]:
    total = precision + recall
    f = 2.0 * precision * recall / total if total > 0 else 0.0
    return float(precision), float(recall), float(f)


def _comb2(counts) -> float:
    """Sum of n*(n-1)/2 over counts (number of unordered pairs)."""
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * (counts - 1.0) / 2.0).sum())


def _contingency(truth, pred):
    """Non-zero contingency cells plus the row/column of each and the margins.

    Returns ``(cells, row, col, truth_sizes, pred_sizes)`` where ``cells[k]``
    items have true identity ``row[k]`` and predicted cluster ``col[k]``.
    Noise in ``pred`` is already turned into singletons.
    """
    t = _encode(truth)
    p = _encode(noise_as_singletons(_as_int_labels(pred)))
    if len(t) != len(p):
        raise ValueError(f"truth has {len(t)} items but pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("need at least one item")
    n_pred = int(p.max()) + 1
    keys, cells = np.unique(t * n_pred + p, return_counts=True)
    return cells, keys // n_pred, keys % n_pred, np.bincount(t), np.bincount(p)


# ---------------------------------------------------------------------------
# clustering quality
# ---------------------------------------------------------------------------


def noise_as_singletons(pred) -> np.ndarray:
    """Relabel every noise label (-1) to a fresh, unique cluster label.

    Parameters
    ----------
    pred : array_like of int, shape (n,)
        Cluster labels; ``-1`` means unknown / noise.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        A copy in which each ``-1`` got its own label, starting just above
        the largest existing label (or at 0). Other labels are unchanged.

    Examples
    --------
    >>> noise_as_singletons([-1, 3, -1, 0]).tolist()
    [4, 3, 5, 0]
    """
    out = _as_int_labels(pred).copy()
    noise = out == NOISE
    start = max(int(out.max()) + 1, 0) if out.size else 0
    out[noise] = start + np.arange(int(noise.sum()))
    return out


def pairwise_prf(truth, pred) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a clustering.

    A predicted pair is two faces in the same predicted cluster, a true pair
    two faces of the same identity (unordered, i < j). Precision is the share
    of predicted pairs that are true pairs, recall the share of true pairs
    that are predicted. Counted from the contingency table, O(n log n).
    Noise (-1) faces are singletons and so form no predicted pair.

    Parameters
    ----------
    truth : sequence of hashable, length n
        True identity of each face.
    pred : array_like of int, length n
        Predicted cluster of each face, -1 for unknown.

    Returns
    -------
    (precision, recall, f) : tuple of float
        Precision is 1.0 when there is no predicted pair, recall is 1.0 when
        there is no true pair; F is 0.0 when both precision and recall are 0.

    Examples
    --------
    >>> pairwise_prf(["a", "a", "a", "b", "b"], [0, 0, 1, 1, 1])
    (0.5, 0.5, 0.5)
    """
    cells, _, _, truth_sizes, pred_sizes = _contingency(truth, pred)
    both = _comb2(cells)
    pred_pairs, true_pairs = _comb2(pred_sizes), _comb2(truth_sizes)
    precision = both / pred_pairs if pred_pairs > 0 else 1.0
    recall = both / true_pairs if true_pairs > 0 else 1.0
    return _prf(precision, recall)


def bcubed_prf(truth, pred) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 (Amigó et al. 2009).

    For a face e, precision(e) is the share of faces in e's predicted cluster
    that have e's identity, recall(e) the share of faces with e's identity
    that are in e's predicted cluster (both counting e itself). The scores are
    averages over all faces; F is their harmonic mean. Noise (-1) faces are
    singletons.

    Parameters
    ----------
    truth : sequence of hashable, length n
        True identity of each face.
    pred : array_like of int, length n
        Predicted cluster of each face, -1 for unknown.

    Returns
    -------
    (precision, recall, f) : tuple of float

    Examples
    --------
    >>> p, r, f = bcubed_prf(["a", "a", "b", "b"], [0, 0, 0, 0])
    >>> round(p, 3), r, round(f, 3)
    (0.5, 1.0, 0.667)
    """
    cells, row, col, truth_sizes, pred_sizes = _contingency(truth, pred)
    n = float(truth_sizes.sum())
    # each of the `cells[k]` faces in a cell scores cells[k] / cluster size
    precision = float((cells**2 / pred_sizes[col]).sum()) / n
    recall = float((cells**2 / truth_sizes[row]).sum()) / n
    return _prf(precision, recall)


def clustering_report(truth, pred) -> dict:
    """All clustering-quality numbers for one run in a flat dict.

    Parameters
    ----------
    truth : sequence of hashable, length n
        True identity of each face.
    pred : array_like of int, length n
        Predicted cluster of each face, -1 for unknown.

    Returns
    -------
    dict
        ``n_faces``, ``n_identities``, ``n_clusters`` (non-noise clusters),
        ``unknown_share`` (share of faces labelled -1),
        ``pairwise_precision/recall/f``, ``bcubed_precision/recall/f``,
        ``nmi`` and ``ari`` (scikit-learn, on the noise-as-singletons labels).

    Examples
    --------
    >>> r = clustering_report(["a", "a", "b"], [0, 0, -1])
    >>> r["n_clusters"], r["pairwise_f"], r["ari"]
    (1, 1.0, 1.0)
    """
    labels = _as_int_labels(pred)
    t = _encode(truth)
    pp, pr, pf = pairwise_prf(truth, labels)
    bp, br, bf = bcubed_prf(truth, labels)
    p = noise_as_singletons(labels)
    return {
        "n_faces": int(len(t)),
        "n_identities": int(len(np.unique(t))),
        "n_clusters": int(len(np.unique(labels[labels != NOISE]))),
        "unknown_share": float(np.mean(labels == NOISE)),
        "pairwise_precision": pp,
        "pairwise_recall": pr,
        "pairwise_f": pf,
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f": bf,
        "nmi": float(normalized_mutual_info_score(t, p)),
        "ari": float(adjusted_rand_score(t, p)),
    }


# ---------------------------------------------------------------------------
# embedding (verification) quality
# ---------------------------------------------------------------------------


def _check_embeddings(X, labels):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n, d), got shape {X.shape}")
    codes = _encode(labels)
    if len(codes) != len(X):
        raise ValueError(f"X has {len(X)} rows but labels has {len(codes)}")
    return X, codes


def _row_distances(X, i, j, chunk: int = 4096) -> np.ndarray:
    """Euclidean distances ||X[i[k]] - X[j[k]]||, computed in chunks."""
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        diff = X[i[s : s + chunk]] - X[j[s : s + chunk]]
        out[s : s + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _all_pair_distances(X, codes):
    d = pdist(X)  # condensed, same (i < j) order as below
    same = pdist(codes[:, None].astype(np.float64), "cityblock") == 0
    return d[same], d[~same]


def _groups(codes):
    """Items sorted by label, each label's size, and its start in that order."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return order, sizes, starts


def _all_same_pairs(order, sizes, starts):
    parts_i, parts_j = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for g in np.flatnonzero(sizes >= 2):
        members = order[starts[g] : starts[g] + sizes[g]]
        a, b = np.triu_indices(sizes[g], k=1)
        parts_i.append(members[a])
        parts_j.append(members[b])
    return np.concatenate(parts_i), np.concatenate(parts_j)


def _sample_same_pairs(rng, k, codes, order, sizes, starts):
    """k same-label pairs, uniform with replacement over all such pairs."""
    weight = (sizes[codes] - 1).astype(np.float64)
    i = rng.choice(len(codes), size=k, p=weight / weight.sum())
    g = codes[i]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    own = rank[i] - starts[g]  # position of i inside its label block
    r = rng.integers(0, sizes[g] - 1)
    r += r >= own  # skip i itself
    return i, order[starts[g] + r]


def _sample_different_pairs(rng, k, codes, order, sizes, starts):
    """k different-label pairs, uniform with replacement over all such pairs."""
    n = len(codes)
    weight = (n - sizes[codes]).astype(np.float64)
    i = rng.choice(n, size=k, p=weight / weight.sum())
    g = codes[i]
    r = rng.integers(0, n - sizes[g])
    r += sizes[g] * (r >= starts[g])  # skip i's own label block
    return i, order[r]


def _sample_pairs(codes, max_pairs, seed):
    """Stratified pair sample: all same pairs if they fit in half the budget."""
    rng = np.random.default_rng(seed)
    order, sizes, starts = _groups(codes)
    n_same = int(round(_comb2(sizes)))
    n_diff = int(round(_comb2([len(codes)]))) - n_same
    if n_same <= max_pairs // 2:
        si, sj = _all_same_pairs(order, sizes, starts)
    else:
        si, sj = _sample_same_pairs(rng, max_pairs // 2, codes, order, sizes, starts)
    k_diff = min(n_diff, max_pairs - len(si))
    di, dj = _sample_different_pairs(rng, k_diff, codes, order, sizes, starts)
    return si, sj, di, dj


def pair_distances(X, labels, max_pairs: int | None = None, seed: int = 0):
    """Euclidean distances of all same- and different-identity pairs.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Embeddings, one row per face.
    labels : sequence of hashable, length n
        Identity of each face.
    max_pairs : int, optional
        If given and n*(n-1)/2 exceeds it, return a deterministic sample of
        about ``max_pairs`` pairs instead: every same-identity pair when they
        number at most ``max_pairs // 2`` (else that many drawn uniformly with
        replacement), and different-identity pairs drawn uniformly with
        replacement to fill the rest. Per-class rates (ROC, FAR, TAR) are
        unaffected by this stratification.
    seed : int
        Seed of the sampler.

    Returns
    -------
    same, different : numpy.ndarray of float
        Distances of same-identity and different-identity pairs; without
        sampling in (i, j), i < j, row-major order.

    Examples
    --------
    >>> same, diff = pair_distances([[0, 0], [3, 0], [0, 4]], ["p", "p", "q"])
    >>> same.tolist(), diff.tolist()
    ([3.0], [4.0, 5.0])
    """
    X, codes = _check_embeddings(X, labels)
    if max_pairs is None or _comb2([len(codes)]) <= max_pairs:
        return _all_pair_distances(X, codes)
    si, sj, di, dj = _sample_pairs(codes, int(max_pairs), seed)
    return _row_distances(X, si, sj), _row_distances(X, di, dj)


def _roc(same, different):
    """ROC of "accept if distance <= threshold": fpr, tpr, distance thresholds."""
    same = np.asarray(same, dtype=np.float64).ravel()
    different = np.asarray(different, dtype=np.float64).ravel()
    if same.size == 0 or different.size == 0:
        raise ValueError("need at least one same and one different pair")
    y = np.concatenate((np.ones(same.size), np.zeros(different.size)))
    scores = -np.concatenate((same, different))  # similarity = -distance
    fpr, tpr, thr = roc_curve(y, scores, drop_intermediate=False)
    return fpr, tpr, -thr  # first threshold is -inf: accept nothing


def _tar_from_roc(fpr, tpr, dist, far):
    ok = np.flatnonzero(fpr <= far)
    k = ok[np.argmax(tpr[ok])]  # first (strictest) point with the best TAR
    return float(tpr[k]), float(dist[k])


def _eer_from_roc(fpr, tpr, dist):
    fnr = 1.0 - tpr
    k = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[k] + fnr[k]) / 2.0), float(dist[k])


def tar_at_far(same, different, far: float) -> tuple[float, float]:
    """True accept rate at the best distance threshold with FAR <= ``far``.

    A pair is accepted when its distance is <= the threshold.

    Parameters
    ----------
    same, different : array_like of float
        Distances of same-identity and different-identity pairs.
    far : float
        Largest allowed false accept rate (share of different pairs accepted).

    Returns
    -------
    (tar, threshold) : tuple of float
        Share of same pairs accepted, and the distance threshold reaching it
        (``-inf`` if no threshold accepts anything within the FAR budget).

    Examples
    --------
    >>> tar_at_far([1.0, 3.0], [1.5, 2.5, 4.5, 5.5], far=0.0)
    (0.5, 1.0)
    """
    return _tar_from_roc(*_roc(same, different), far)


def equal_error_rate(same, different) -> tuple[float, float]:
    """Equal error rate and the distance threshold where it occurs.

    Taken at the ROC point (threshold between observed distances) where the
    false accept and false reject rates are closest; the EER is their mean.

    Parameters
    ----------
    same, different : array_like of float
        Distances of same-identity and different-identity pairs.

    Returns
    -------
    (eer, threshold) : tuple of float

    Examples
    --------
    >>> equal_error_rate([1.0, 3.0], [1.5, 2.5, 4.5, 5.5])
    (0.5, 2.5)
    """
    return _eer_from_roc(*_roc(same, different))


def verification_report(
    X, labels, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0
) -> dict:
    """Face-verification quality of embeddings, independent of clustering.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Embeddings, one row per face.
    labels : sequence of hashable, length n
        Identity of each face; needs at least one same-identity pair and two
        identities.
    max_pairs : int
        Above this many pairs, a seeded sample is used (see
        :func:`pair_distances`) and ``pairs_sampled`` is True.
    seed : int
        Seed of the pair sampler.

    Returns
    -------
    dict
        ``n_same_pairs``, ``n_different_pairs``, ``pairs_sampled``,
        ``roc_auc`` (similarity = -distance), ``tar_at_far_1e-3``,
        ``tar_at_far_1e-2``, ``eer``, ``eer_threshold`` (a distance),
        ``same_mean``, ``same_std``, ``different_mean``, ``different_std``
        (population std, ddof=0).

    Examples
    --------
    >>> r = verification_report([[0.0], [1.0], [10.0], [11.5]], list("aabb"))
    >>> r["roc_auc"], r["eer"], r["eer_threshold"]
    (1.0, 0.0, 1.5)
    """
    X, _ = _check_embeddings(X, labels)
    n_pairs = _comb2([len(X)])
    same, different = pair_distances(X, labels, max_pairs=max_pairs, seed=seed)
    fpr, tpr, dist = _roc(same, different)
    eer, eer_threshold = _eer_from_roc(fpr, tpr, dist)
    return {
        "n_same_pairs": int(same.size),
        "n_different_pairs": int(different.size),
        "pairs_sampled": bool(n_pairs > max_pairs),
        "roc_auc": float(auc(fpr, tpr)),
        "tar_at_far_1e-3": _tar_from_roc(fpr, tpr, dist, 1e-3)[0],
        "tar_at_far_1e-2": _tar_from_roc(fpr, tpr, dist, 1e-2)[0],
        "eer": eer,
        "eer_threshold": eer_threshold,
        "same_mean": float(same.mean()),
        "same_std": float(same.std()),
        "different_mean": float(different.mean()),
        "different_std": float(different.std()),
    }


# ---------------------------------------------------------------------------
# box matching
# ---------------------------------------------------------------------------


def match_boxes(labelled, detected, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one matching of labelled boxes to detected boxes.

    Hungarian assignment (scipy ``linear_sum_assignment``) maximising the total
    IoU over pairs with IoU >= ``min_iou`` (and > 0); boxes without such a
    partner stay unmatched.

    Parameters
    ----------
    labelled, detected : array_like, shape (n, 4) and (m, 4)
        Boxes ``(left, top, right, bottom)``.
    min_iou : float
        Smallest IoU that counts as a match.

    Returns
    -------
    list of (labelled_index, detected_index)
        Sorted by labelled index.

    Examples
    --------
    >>> match_boxes([(0, 0, 10, 10)], [(5, 0, 15, 10), (0, 0, 10, 11)])
    [(0, 1)]
    """
    overlap = iou_matrix(labelled, detected)
    if overlap.size == 0:
        return []
    valid = (overlap >= min_iou) & (overlap > 0)
    rows, cols = linear_sum_assignment(np.where(valid, overlap, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]
