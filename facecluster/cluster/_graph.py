"""The default clusterer: community detection on a self-tuning k-nearest-neighbour graph.

Fixed distance thresholds fail when a face model packs some groups of people tighter than
others (dlib's model puts different Japanese women 0.21-0.33 apart, one person's photos 0.4
apart). This clusterer adapts to the collection instead:

1. *Centre* the embeddings on the collection's mean face and re-normalise, so distances
   measure what tells these faces apart rather than what they have in common.
2. Link each face to its ``k`` nearest neighbours, ``k`` growing with the square root of the
   collection (a person's share of a bigger collection is bigger), with heat-kernel weights
   whose scale is each face's own distance to its k-th neighbour (dense regions get sharper
   kernels). Edges beyond the model's *same-person bound* in the original space are never
   made: a loose absolute safety net.
3. Find communities with Leiden (modularity), seeded, so results repeat. Near-duplicate
   faces (resized or re-saved copies of one photo) are clustered as one face.
4. Merge communities whose faces are, on average, as close to each other as faces within a
   typical community of this collection are: this joins one person split by photo
   conditions without a global threshold.
"""

from __future__ import annotations

import igraph
import leidenalg
import numpy as np
from sklearn.neighbors import NearestNeighbors

from facecluster.cluster.base import BaseClusterer


class GraphClusterer(BaseClusterer):
    """Leiden communities on a self-tuning kNN graph, then a self-calibrated merge and split.

    Parameters
    ----------
    same_person_bound : float
        Faces farther apart than this (Euclidean, in the model's own space) are never linked.
        0.6 is dlib's published operating point for its ResNet, so this only removes
        edges the model itself calls different people.
    k : int, optional
        Neighbours per face. By default ``clip(round(sqrt(n) / 2), 3, 30)``.
    merge_tolerance : float
        Merge two communities when their RMS distance is below ``merge_tolerance`` times the
        median within-community RMS distance (and below ``same_person_bound``).
    split_ratio : float
        Split a community in two when its two halves (2-means) are more than ``split_ratio``
        times the median community width apart: two people, not one.
    seed : int
        Random seed of the Leiden optimiser and of the 2-means split.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster index of each face, -1 for faces that belong to nobody (no other face).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 128))
    >>> X = np.repeat(centres, 10, axis=0) + 0.02 * rng.normal(size=(30, 128))
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> labels = GraphClusterer().fit_predict(X)
    >>> len(set(labels))
    3
    """

    name = "graph"

    def __init__(self, same_person_bound: float = 0.6, k: int | None = None,
                 merge_tolerance: float = 1.0, split_ratio: float = 1.5, seed: int = 0):
        self.same_person_bound = same_person_bound
        self.k = k
        self.merge_tolerance = merge_tolerance
        self.split_ratio = split_ratio
        self.seed = seed

    def _cluster(self, X: np.ndarray, forbidden: set) -> np.ndarray:
        copy_of = near_duplicates(X, self.same_person_bound / 4, forbidden)
        if copy_of.max() + 1 < len(X):  # cluster one face per near-duplicate group
            keep = np.unique(copy_of, return_index=True)[1]  # group g's first face is node g
            kept_forbidden = {(min(copy_of[a], copy_of[b]), max(copy_of[a], copy_of[b]))
                              for a, b in forbidden if copy_of[a] != copy_of[b]}
            return self._cluster(X[keep], kept_forbidden)[copy_of]
        n = len(X)
        if n < 2:
            return np.zeros(n, int)
        k = self.k or int(np.clip(round(np.sqrt(n) / 2), 3, 30))
        k = min(k, n - 1)
        graph = knn_graph(X, k, self.same_person_bound, forbidden)
        partition = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                             weights="weight", seed=self.seed)
        labels = np.array(partition.membership)
        labels = merge_close_clusters(X, labels, forbidden, self.merge_tolerance,
                                      self.same_person_bound)
        return split_wide_clusters(X, labels, self.split_ratio, self.seed)


def near_duplicates(X: np.ndarray, radius: float, forbidden: set) -> np.ndarray:
    """Group index per face: faces closer than ``radius`` (resized or re-saved copies of one
    photo) share a group, so duplicates neither dominate a neighbourhood nor shrink the
    measured spread of a person."""
    neighbours = NearestNeighbors(radius=radius).fit(X).radius_neighbors(X, return_distance=False)
    edges = [(i, int(j)) for i, near in enumerate(neighbours) for j in near
             if i < j and (i, int(j)) not in forbidden]
    graph = igraph.Graph(n=len(X), edges=edges)
    membership = np.array(graph.connected_components().membership)
    return np.unique(membership, return_inverse=True)[1]


def centred(X: np.ndarray) -> np.ndarray:
    """Unit vectors after removing the collection's mean face."""
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    Z = Z - Z.mean(axis=0)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def knn_graph(X: np.ndarray, k: int, bound: float, forbidden: set) -> igraph.Graph:
    """Undirected kNN graph (in centred space) with self-tuning heat-kernel weights."""
    Z = centred(X)
    distances, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    distances, neighbours = distances[:, 1:], neighbours[:, 1:]
    scale = np.maximum(distances[:, -1], 1e-6)  # each face's distance to its k-th neighbour
    rows = np.repeat(np.arange(len(X)), k)
    cols = neighbours.ravel()
    weights = np.exp(-distances.ravel() ** 2 / (scale[rows] * scale[cols]))
    original = np.linalg.norm(X[rows] - X[cols], axis=1)
    keep = original <= bound
    pairs = {}
    for a, b, w in zip(rows[keep].tolist(), cols[keep].tolist(), weights[keep].tolist()):
        key = (a, b) if a < b else (b, a)
        if key not in forbidden:
            pairs[key] = max(w, pairs.get(key, 0.0))
    graph = igraph.Graph(n=len(X), edges=list(pairs))
    graph.es["weight"] = list(pairs.values())
    return graph


def merge_close_clusters(X, labels, forbidden: set, tolerance: float, bound: float) -> np.ndarray:
    """Merge clusters while some pair is as close as a typical cluster is wide.

    Cluster distance is the RMS distance between their faces, computed from centroids and
    spreads. Each round merges every pair of clusters that are each other's nearest (for this
    reducible linkage the result equals merging one pair at a time); clusters holding faces of
    the same photo never merge.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    sizes = np.bincount(labels).astype(float)
    means = np.zeros((len(sizes), X.shape[1]))
    np.add.at(means, labels, X)
    means /= sizes[:, None]
    spread = np.bincount(labels, ((X - means[labels]) ** 2).sum(axis=1)) / sizes
    several = sizes >= 2
    if not several.any():
        return labels
    widths = np.sqrt(2 * spread[several] * sizes[several] / (sizes[several] - 1))
    threshold = min(bound, tolerance * float(np.median(widths)))
    while True:
        apart = {(labels[a], labels[b]) for a, b in forbidden}
        alive = np.flatnonzero(sizes > 0)
        m = means[alive]
        squared = (m ** 2).sum(axis=1)
        rms = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * m @ m.T, 0)
                      + spread[alive, None] + spread[None, alive])
        np.fill_diagonal(rms, np.inf)
        position = {c: i for i, c in enumerate(alive)}
        for a, b in apart:
            if a != b:
                rms[position[a], position[b]] = rms[position[b], position[a]] = np.inf
        nearest = rms.argmin(axis=1)
        pairs = [(i, j) for i, j in enumerate(nearest)
                 if i < j and nearest[j] == i and rms[i, j] < threshold]
        if not pairs:
            break
        for i, j in pairs:
            a, b = alive[i], alive[j]
            total = sizes[a] + sizes[b]
            merged = (sizes[a] * means[a] + sizes[b] * means[b]) / total
            spread[a] = (sizes[a] * (spread[a] + ((means[a] - merged) ** 2).sum())
                         + sizes[b] * (spread[b] + ((means[b] - merged) ** 2).sum())) / total
            means[a], sizes[a], sizes[b] = merged, total, 0
            labels[labels == b] = a
    return np.unique(labels, return_inverse=True)[1]



def split_wide_clusters(X, labels, ratio: float, seed: int = 0) -> np.ndarray:
    """Split each cluster whose two halves lie farther apart than ``ratio`` typical widths.

    The mirror of the merge: it separates people a tiny collection's sparse graph joined
    (two people with a photo or two each), and never fires on clusters as compact as the rest.
    """
    from sklearn.cluster import KMeans

    labels = np.unique(labels, return_inverse=True)[1]
    groups = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    widths = [_rms_width(X[g]) for g in groups if len(g) >= 2]
    if not widths:
        return labels
    limit = ratio * float(np.median(widths))
    next_label = labels.max() + 1
    for members in groups:
        if len(members) < 2:
            continue
        halves = (KMeans(2, n_init=3, random_state=seed).fit_predict(X[members]) if len(members) > 2
                  else np.array([0, 1]))
        a, b = X[members[halves == 0]], X[members[halves == 1]]
        if len(a) and len(b) and _rms_between(a, b) > limit:
            labels[members[halves == 1]] = next_label
            next_label += 1
    return labels


def _rms_width(X: np.ndarray) -> float:
    """RMS distance between two different faces of a group."""
    n = len(X)
    return float(np.sqrt(2 * ((X - X.mean(axis=0)) ** 2).sum(axis=1).mean() * n / (n - 1)))


def _rms_between(A: np.ndarray, B: np.ndarray) -> float:
    spread = ((A - A.mean(axis=0)) ** 2).sum(axis=1).mean() + ((B - B.mean(axis=0)) ** 2).sum(axis=1).mean()
    return float(np.sqrt(((A.mean(axis=0) - B.mean(axis=0)) ** 2).sum() + spread))
