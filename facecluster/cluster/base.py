"""What every clusterer shares: the scikit-learn estimator shape and the constraints.

Constraints are honoured the same way for every algorithm:

* **must-link** groups (a video track, faces a user put together) are collapsed into one
  item, their mean embedding, before clustering, and expanded afterwards;
* **cannot-link** groups (faces of one photo or frame, faces a user separated) never end up
  in one cluster: algorithms that can, avoid it; afterwards :func:`repair_cannot_link`
  moves the weaker member out of any cluster that still breaks one;
* except a person shown **several times in one photo** (a collage, a mirror): faces of one
  photo closer to each other than any two faces of any other photo are allowed together
  (:func:`repeated_in_photo`).

Faces left alone in a cluster are labelled -1: they belong to nobody else in the collection.
"""

from __future__ import annotations

import time

import numpy as np


class BaseClusterer:
    """Base class: subclasses implement ``_cluster(X, forbidden) -> labels``.

    ``forbidden`` is a :class:`PairSet` of (i, j) index pairs, i < j, that must not share a
    cluster: set-like (``(i, j) in forbidden``, iteration in sorted order, ``len``) and
    vectorised (:meth:`PairSet.contains`, :attr:`PairSet.pairs`). ``X`` reaches ``_cluster``
    as ``dtype`` (float64 unless a subclass works in float32).
    """

    name = "base"
    dtype = np.float64

    def fit(self, X, cannot_link=None, must_link=None, apart=None):
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : array of shape (n_faces, n_dims)
        cannot_link : array of shape (n_faces,), optional
            Group id per face (e.g. its photo); faces with the same id >= 0 are different
            people. -1: no constraint.
        must_link : array of shape (n_faces,), optional
            Group id per face (e.g. its video track); faces with the same id >= 0 are one
            person. -1: no constraint.
        apart : iterable of (i, j), optional
            Pairs of faces that are different people (e.g. a user's corrections).
        """
        start = time.perf_counter()
        X = np.asarray(X, dtype=self.dtype)
        n = len(X)
        cannot_link = _groups(cannot_link, n)
        node_of, node_X = collapse_must_link(X, _groups(must_link, n))
        forbidden = forbidden_pairs(node_of, cannot_link, repeated_in_photo(X, cannot_link))
        apart = np.asarray(list(apart or ()), dtype=np.int64).reshape(-1, 2)
        if len(apart):
            forbidden = forbidden | PairSet(len(node_X), node_of[apart[:, 0]], node_of[apart[:, 1]])
        self.timings_ = {"constraints": time.perf_counter() - start}  # seconds per step
        node_labels = np.asarray(self._cluster(node_X, forbidden)) if len(node_X) else np.zeros(0, int)
        start = time.perf_counter()
        node_labels = repair_cannot_link(node_X, node_labels, forbidden)
        self.labels_ = singletons_to_noise(node_labels[node_of])
        self.timings_["repair"] = time.perf_counter() - start
        return self

    def fit_predict(self, X, cannot_link=None, must_link=None, apart=None) -> np.ndarray:
        """Cluster ``X`` and return ``labels_``."""
        return self.fit(X, cannot_link, must_link, apart).labels_

    def get_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _groups(groups, n: int) -> np.ndarray:
    if groups is None:
        return np.full(n, -1)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"constraint groups have length {len(groups)}, expected {n}")
    return groups.astype(np.int64)


def union_groups(*groups: np.ndarray) -> np.ndarray:
    """One must-link group array from several: faces sharing a group in any of them end up
    in one group (-1 where a face is in none)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(groups[0])
    rows, cols, offset = [], [], n
    for group in groups:
        member = np.flatnonzero(group >= 0)
        codes = np.unique(group[member], return_inverse=True)[1]
        rows.append(member)
        cols.append(offset + codes)
        offset += codes.max() + 1 if len(codes) else 0
    rows, cols = np.concatenate(rows).astype(int), np.concatenate(cols).astype(int)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(offset, offset))
    component = connected_components(graph, directed=False)[1][:n]
    grouped = np.zeros(n, bool)
    grouped[rows] = True
    return np.where(grouped, component, -1)


def collapse_must_link(X: np.ndarray, must_link: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map each face to a node (one per must-link group, one per free face) and average."""
    if not (must_link >= 0).any():  # nothing to collapse: the order below (free faces
        return np.arange(len(X) - 1, -1, -1), X[::-1]  # sort by -1 - index, last first), no copy
    keys = np.where(must_link >= 0, must_link, -1 - np.arange(len(X)))
    _, node_of = np.unique(keys, return_inverse=True)
    counts = np.bincount(node_of, minlength=node_of.max() + 1 if len(X) else 0)
    node_X = np.zeros((len(counts), X.shape[1]))
    np.add.at(node_X, node_of, X)
    return node_of, (node_X / np.maximum(counts, 1)[:, None]).astype(X.dtype)


class PairSet:
    """A set of unordered index pairs, stored as one sorted array of codes ``i * n + j`` (i < j).

    Memory is eight bytes a pair, membership is a binary search, and every operation a
    clusterer needs on all pairs at once is vectorised; it also behaves as the set of
    ``(i, j)`` tuples it holds (``in``, iteration in sorted order, ``len``).

    >>> pairs = PairSet(5, [3, 0, 1], [1, 2, 1])
    >>> list(pairs), (1, 3) in pairs, (3, 1) in pairs, len(pairs)
    ([(0, 2), (1, 3)], True, True, 2)
    """

    def __init__(self, n: int, a=(), b=()):
        self.n = int(n)
        a, b = np.asarray(a, dtype=np.int64).ravel(), np.asarray(b, dtype=np.int64).ravel()
        low, high = np.minimum(a, b), np.maximum(a, b)
        different = low != high
        self.codes = _sorted_unique(low[different] * self.n + high[different])

    @classmethod
    def _from_codes(cls, n: int, codes: np.ndarray) -> PairSet:
        pairs = cls(n)
        pairs.codes = codes
        return pairs

    @property
    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) arrays, i < j, in sorted order."""
        return self.codes // max(self.n, 1), self.codes % max(self.n, 1)

    def contains(self, a, b) -> np.ndarray:
        """Whether each pair (a[k], b[k]) is in the set (either order)."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        codes = np.minimum(a, b) * self.n + np.maximum(a, b)
        if not len(self.codes):
            return np.zeros(codes.shape, bool)
        where = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return (self.codes[where] == codes) & (a != b)

    def relabel(self, mapping: np.ndarray, n: int | None = None) -> PairSet:
        """The pairs (mapping[i], mapping[j]) among ``n`` items; pairs that map to one item go."""
        a, b = self.pairs
        mapping = np.asarray(mapping)
        return PairSet(int(mapping.max()) + 1 if n is None and len(mapping) else (n or 0),
                       mapping[a], mapping[b])

    def __or__(self, other: PairSet) -> PairSet:
        n = max(self.n, other.n)
        (a, b), (c, d) = self.pairs, other.pairs
        return PairSet(n, np.r_[a, c], np.r_[b, d])

    def __contains__(self, pair) -> bool:
        a, b = pair
        return bool(self.contains([a], [b])[0])

    def __iter__(self):
        a, b = self.pairs
        return zip(a.tolist(), b.tolist())

    def __len__(self) -> int:
        return len(self.codes)

    def __bool__(self) -> bool:
        return len(self.codes) > 0

    def __repr__(self) -> str:
        return f"PairSet({len(self)} pairs among {self.n})"


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique of an int64 array by one sort (faster than its hash path on large arrays)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _pairs_within(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of positions (p, q), p < q, inside each run ``[start, start + size)``,
    grouped by run and in row-major order within one."""
    sizes = np.asarray(sizes, dtype=np.int64)
    positions = np.repeat(np.asarray(starts, dtype=np.int64), sizes) + _ramp(sizes)
    after = np.repeat(np.asarray(starts, dtype=np.int64) + sizes, sizes) - positions - 1
    first = np.repeat(positions, after)
    return first, first + 1 + _ramp(after)


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def forbidden_pairs(node_of: np.ndarray, cannot_link: np.ndarray,
                    repeated: np.ndarray | None = None) -> PairSet:
    """Node pairs that share a cannot-link group.

    ``repeated`` (from :func:`repeated_in_photo`): faces of one group with the same value >= 0
    show one person several times and are not forbidden to each other.
    """
    n_nodes = int(node_of.max()) + 1 if len(node_of) else 0
    constrained = np.flatnonzero(cannot_link >= 0)
    order = constrained[np.argsort(cannot_link[constrained], kind="stable")]
    # one entry per (group, node), the node's first face in the group
    group = np.unique(cannot_link[order], return_inverse=True)[1]
    first = np.sort(np.unique(group * max(n_nodes, 1) + node_of[order], return_index=True)[1])
    order, group = order[first], group[first]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, len(group)])
    p, q = _pairs_within(starts, sizes)
    if repeated is not None:
        copies_p, copies_q = repeated[order[p]], repeated[order[q]]
        keep = (copies_p < 0) | (copies_p != copies_q)
        p, q = p[keep], q[keep]
    return PairSet(n_nodes, node_of[order[p]], node_of[order[q]])


def _cannot_link_groups(cannot_link: np.ndarray) -> list[np.ndarray]:
    """Face indices of each cannot-link group (ids >= 0)."""
    constrained = np.flatnonzero(cannot_link >= 0)
    order = constrained[np.argsort(cannot_link[constrained], kind="stable")]
    return np.split(order, np.flatnonzero(np.diff(cannot_link[order])) + 1) if len(order) else []


def repeated_in_photo(X: np.ndarray, cannot_link: np.ndarray) -> np.ndarray:
    """Which faces of one photo show the same person again (a collage, a mirror).

    Faces of one photo are different people, so the pairs of faces seen together are the
    collection's own sample of "different people", and the closest such pair is the closest
    two different people have been seen to be. Two faces of one photo closer to each other
    than every pair of faces of every *other* photo are therefore one person shown twice;
    such pairs link into groups (six photos of one actor in a collage form one group).
    Without a second photo with several faces there is nothing to compare with, and nothing
    is lifted. Costs one distance per pair of faces of one photo.

    Parameters
    ----------
    X : array of shape (n_faces, n_dims)
        Embeddings (distances in the model's own space).
    cannot_link : array of shape (n_faces,)
        Photo (or frame) id per face, -1 for none.

    Returns
    -------
    ndarray of shape (n_faces,)
        A group id per face: faces of one photo with the same id >= 0 may be one person;
        -1 for faces with no repeat.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    repeated = np.full(n, -1)
    cannot_link = np.asarray(cannot_link)
    constrained = np.flatnonzero(cannot_link >= 0)
    order = constrained[np.argsort(cannot_link[constrained], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(cannot_link[order]) != 0]) if len(order) else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, len(order)])
    several = sizes > 1
    if several.sum() < 2:
        return repeated
    p, q = _pairs_within(starts[several], sizes[several])
    photo = np.repeat(np.arange(several.sum()), sizes[several] * (sizes[several] - 1) // 2)
    a, b = order[p], order[q]
    distance = np.empty(len(a))
    for lo in range(0, len(a), 1 << 16):  # float64, as the distances between photos compare
        diff = X[a[lo:lo + (1 << 16)]].astype(np.float64) - X[b[lo:lo + (1 << 16)]]
        distance[lo:lo + (1 << 16)] = np.sqrt((diff ** 2).sum(axis=1))
    pair_starts = np.flatnonzero(np.r_[True, photo[1:] != photo[:-1]])
    closest = np.minimum.reduceat(distance, pair_starts)
    best, second = np.argsort(closest, kind="stable")[:2]
    reference = np.where(np.arange(len(closest)) == best, closest[second], closest[best])  # other photos only
    close = distance < reference[photo]
    rows, cols = a[close], b[close]
    if not len(rows):
        return repeated
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    component = connected_components(graph, directed=False)[1]
    linked = np.zeros(n, bool)
    linked[rows] = linked[cols] = True
    repeated[linked] = component[linked]
    return repeated


def repair_cannot_link(X: np.ndarray, labels: np.ndarray, forbidden) -> np.ndarray:
    """Split clusters that hold a forbidden pair: the member farther from the rest leaves.

    The one that leaves starts a cluster of its own (and so becomes unknown unless it is joined).
    Pairs are taken in sorted order; only clusters that break a pair are looked at.
    """
    labels = labels.copy()
    if not len(forbidden) or not len(labels):
        return labels
    if not isinstance(forbidden, PairSet):
        forbidden = PairSet(len(labels), *np.asarray(sorted(forbidden), dtype=np.int64).reshape(-1, 2).T)
    a, b = forbidden.pairs
    broken = (labels[a] == labels[b]) & (labels[a] >= 0)
    if not broken.any():
        return labels
    a, b = a[broken], b[broken]  # moving a face out never breaks another pair
    next_label = labels.max() + 1
    cluster = labels[a]
    moved = []  # (position in sorted order, face): new clusters are numbered in that order
    order = np.argsort(cluster, kind="stable")
    starts = np.flatnonzero(np.r_[True, cluster[order][1:] != cluster[order][:-1]])
    for mine in np.split(order, starts[1:]):  # clusters are independent; within one, sorted order
        c = cluster[mine[0]]
        members = np.flatnonzero(labels == c)
        total, count = X[members].astype(np.float64).sum(axis=0), len(members)
        for position, i, j in zip(mine.tolist(), a[mine].tolist(), b[mine].tolist()):
            if labels[i] != labels[j]:
                continue
            centre = total / count
            weaker = max((i, j), key=lambda f: np.linalg.norm(X[f].astype(np.float64) - centre))
            labels[weaker] = next_label + len(moved)  # unique for now
            moved.append((position, weaker))
            total -= X[weaker]
            count -= 1
    for rank, (_, face) in enumerate(sorted(moved)):
        labels[face] = next_label + rank
    return labels


def singletons_to_noise(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 0..k-1 by decreasing size; clusters of one face become -1."""
    labels = np.asarray(labels)
    out = np.full(len(labels), -1)
    clustered = labels >= 0
    if not clustered.any():
        return out
    values, inverse, counts = np.unique(labels[clustered], return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    out[clustered] = np.where(counts[inverse] >= 2, rank[inverse], -1)
    kept = np.unique(out[out >= 0])
    out[out >= 0] = np.searchsorted(kept, out[out >= 0])
    return out
