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

import numpy as np


class BaseClusterer:
    """Base class: subclasses implement ``_cluster(X, forbidden) -> labels``.

    ``forbidden`` is a set of (i, j) index pairs, i < j, that must not share a cluster.
    """

    name = "base"

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
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        cannot_link = _groups(cannot_link, n)
        node_of, node_X = collapse_must_link(X, _groups(must_link, n))
        forbidden = forbidden_pairs(node_of, cannot_link, repeated_in_photo(X, cannot_link))
        forbidden |= {(min(node_of[i], node_of[j]), max(node_of[i], node_of[j]))
                      for i, j in apart or () if node_of[i] != node_of[j]}
        node_labels = np.asarray(self._cluster(node_X, forbidden)) if len(node_X) else np.zeros(0, int)
        node_labels = repair_cannot_link(node_X, node_labels, forbidden)
        self.labels_ = singletons_to_noise(node_labels[node_of])
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
    keys = np.where(must_link >= 0, must_link, -1 - np.arange(len(X)))
    _, node_of = np.unique(keys, return_inverse=True)
    counts = np.bincount(node_of, minlength=node_of.max() + 1 if len(X) else 0)
    node_X = np.zeros((len(counts), X.shape[1]))
    np.add.at(node_X, node_of, X)
    return node_of, node_X / np.maximum(counts, 1)[:, None]


def forbidden_pairs(node_of: np.ndarray, cannot_link: np.ndarray,
                    repeated: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Node pairs that share a cannot-link group.

    ``repeated`` (from :func:`repeated_in_photo`): faces of one group with the same value >= 0
    show one person several times and are not forbidden to each other.
    """
    pairs = set()
    for group in _cannot_link_groups(cannot_link):
        nodes, first = np.unique(node_of[group], return_index=True)
        copies = (repeated[group][first] if repeated is not None
                  else np.full(len(nodes), -1))
        pairs.update((int(a), int(b)) for i, a in enumerate(nodes) for j, b in enumerate(nodes[i + 1:], i + 1)
                     if copies[i] < 0 or copies[i] != copies[j])
    return pairs


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
    is lifted.

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
    from scipy.spatial.distance import pdist, squareform

    n = len(X)
    repeated = np.full(n, -1)
    groups = [g for g in _cannot_link_groups(np.asarray(cannot_link)) if len(g) > 1]
    if len(groups) < 2:
        return repeated
    distances = [squareform(pdist(X[g])) for g in groups]
    closest = np.array([d[np.triu_indices(len(d), 1)].min() for d in distances])
    order = np.argsort(closest)
    rows, cols = [], []
    for k, (group, d) in enumerate(zip(groups, distances)):
        reference = closest[order[1]] if order[0] == k else closest[order[0]]  # other photos only
        i, j = np.nonzero(np.triu(d < reference, 1))
        rows += group[i].tolist()
        cols += group[j].tolist()
    if not rows:
        return repeated
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    component = connected_components(graph, directed=False)[1]
    linked = np.zeros(n, bool)
    linked[rows] = linked[cols] = True
    repeated[linked] = component[linked]
    return repeated


def repair_cannot_link(X: np.ndarray, labels: np.ndarray, forbidden: set) -> np.ndarray:
    """Split clusters that hold a forbidden pair: the member farther from the rest leaves.

    The one that leaves starts a cluster of its own (and so becomes unknown unless it is joined).
    """
    labels = labels.copy()
    next_label = labels.max() + 1 if len(labels) else 0
    for a, b in sorted(forbidden):
        if labels[a] != labels[b] or labels[a] < 0:
            continue
        members = np.flatnonzero(labels == labels[a])
        centre = X[members].mean(axis=0)
        weaker = max((a, b), key=lambda i: np.linalg.norm(X[i] - centre))
        labels[weaker] = next_label
        next_label += 1
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
