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
5. *Refine* the communities by one shared average-linkage level, chosen by the silhouette of
   the whole partition (a criterion without a threshold): a small collection's sparse graph
   joins people with a photo or two each, and the level that separates them best is the one
   where every face is closest to its own group relative to the next one. The unrefined
   partition is a candidate too, so a large collection keeps its communities.
6. *Strangers*: a face whose distance to the rest of its group looks like a distance to
   another person's centre is left alone (unknown). Both distributions are measured in this
   collection: members' distances to their own group's centre, and every face's distance to
   the nearest other group's centre (the collection's own "different person" sample); a
   two-component mixture decides, face by face. A group of just two faces, which has no
   spread to test, is split when its distance is likelier among the collection's
   nearest-different-person distances than among its same-person ones.

Faces of one photo are different people (the shared constraint machinery in ``base``), except
a person shown several times in one photo (a collage, a mirror): see
:func:`facecluster.cluster.base.repeated_in_photo`.

*Scale* (``docs/scale.md``, ``benchmarks/scale.py``): every structure is ``O(n k)`` -- float32
embeddings, the kNN graph, sorted pair codes for the constraints, cluster pairs only where a
graph edge joins them. Up to :data:`EXACT_LIMIT` faces each step is exactly the one above (the
development sets are measured there); above it, neighbours come from an HNSW index (faiss),
communities from igraph's Leiden, step 5 from a sparse hierarchy grown along graph edges with
the silhouette measured on a sample, and step 6's nearest other group from the groups whose
centres are nearest to the face's own.
"""

from __future__ import annotations

import random
import time

import igraph
import leidenalg
import numpy as np
from scipy.cluster.hierarchy import cut_tree, linkage
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors

from facecluster.cluster.base import BaseClusterer, PairSet, _sorted_unique, repair_cannot_link

# Up to this many faces every step is exact (neighbours by brute force, leidenalg, the
# refinement), as the development sets are measured; above it the collection is large: HNSW
# neighbours (faiss), igraph's own Leiden, and neighbour-restricted searches for the nearest
# other group. Every step is float32 and linear or n log n in memory in both.
EXACT_LIMIT = 20_000
HNSW_M = 16  # links per node of the HNSW graph (faiss)
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 48
EXTRA_NEIGHBOURS = 8  # searched beyond k on large collections, to make up for near-duplicates
# k on large collections: most people of a large collection have a handful of photos (sizes
# are Zipf-like), and 30 neighbours link each of them to two dozen others. At 100,000
# synthetic faces (benchmarks/scale.py) k = 15 gives BCubed F 0.759 against 0.736 with 30,
# in half the time.
LARGE_K = 15


class GraphClusterer(BaseClusterer):
    """Leiden communities on a self-tuning kNN graph, a self-calibrated merge, a silhouette
    refinement and a stranger test.

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
    refine : bool
        Step 5, the silhouette refinement (off only to measure what it adds). It runs on
        collections of up to :data:`EXACT_LIMIT` faces: it is what joins and separates people
        with a photo or two each in a small collection, and costs ``O(m^2)`` per community.
    strangers : bool
        Step 6, the stranger test and the pair test (off only to measure what they add).
    seed : int
        Random seed of the Leiden optimiser.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster index of each face, -1 for faces that belong to nobody (no other face).

    Notes
    -----
    No step has a distance threshold of its own: the refinement level is the one with the
    highest silhouette, and the stranger test compares two distributions measured in the
    collection. ``same_person_bound`` is the only absolute number.

    *Scale.* Memory and time grow as ``n k`` (``k`` <= 30): the kNN graph is the only
    face-to-face structure, constraints are sorted pair codes (:class:`~facecluster.cluster.base.PairSet`),
    and clusters are only ever compared with clusters they share a graph edge with. Above
    :data:`EXACT_LIMIT` faces the neighbours come from an HNSW index (faiss, built on one
    thread so that results repeat) and communities from igraph's Leiden (the same modularity
    objective, in C); the refinement, an ``O(m^2)`` step for small collections, is left out.

    *One person several times in one photo.* Faces of one photo are cannot-linked, except two
    faces closer to each other than any two faces of any *other* photo of the collection are:
    the closest pair of people ever seen together is the collection's own lower bound for two
    different people, so a pair below it is one person shown twice (a collage such as dlib's
    ``bald_guys.jpg``, a mirror). See :func:`facecluster.cluster.base.repeated_in_photo`.

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
    dtype = np.float32

    def __init__(self, same_person_bound: float = 0.6, k: int | None = None,
                 merge_tolerance: float = 1.0, refine: bool = True, strangers: bool = True,
                 seed: int = 0):
        self.same_person_bound = same_person_bound
        self.k = k
        self.merge_tolerance = merge_tolerance
        self.refine = refine
        self.strangers = strangers
        self.seed = seed

    def _cluster(self, X: np.ndarray, forbidden) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        clock = _Clock(self.__dict__.setdefault("timings_", {}))
        if not isinstance(forbidden, PairSet):
            forbidden = PairSet(len(X), *np.asarray(list(forbidden), dtype=np.int64).reshape(-1, 2).T)
        radius = self.same_person_bound / 4
        large = len(X) > EXACT_LIMIT
        if large:  # one neighbour search serves the near-duplicates and the graph
            neighbours = NeighbourLists.search(centred(X), self._k(len(X)) + EXTRA_NEIGHBOURS)
            clock("neighbours")
            copy_of = neighbours.near_duplicates(X, radius, forbidden)
        else:
            copy_of = near_duplicates(X, radius, forbidden)
        clock("near-duplicates")
        if copy_of.max() + 1 < len(X):  # cluster one face per near-duplicate group
            keep = np.unique(copy_of, return_index=True)[1]  # group g's first face is node g
            kept_forbidden = forbidden.relabel(copy_of, len(keep))
            if not large:
                return self._cluster(X[keep], kept_forbidden)[copy_of]
            X, forbidden = X[keep], kept_forbidden
            neighbours = neighbours.collapse(copy_of, centred(X))
            clock("near-duplicates")
            return self._cluster_graph(X, forbidden, neighbours)[copy_of]
        if large:
            return self._cluster_graph(X, forbidden, neighbours)
        n = len(X)
        if n < 2:
            return np.zeros(n, int)
        neighbours = NeighbourLists.search(centred(X), self._k(n))
        clock("neighbours")
        return self._cluster_graph(X, forbidden, neighbours)

    def _k(self, n: int) -> int:
        k = self.k or int(np.clip(round(np.sqrt(n) / 2), 3, LARGE_K if n > EXACT_LIMIT else 30))
        return max(min(k, n - 1), 1)

    def _cluster_graph(self, X, forbidden: PairSet, neighbours: NeighbourLists) -> np.ndarray:
        n = len(X)
        large = n > EXACT_LIMIT
        clock = _Clock(self.__dict__.setdefault("timings_", {}))
        neighbours = neighbours.first(self._k(n))
        edges, weights, lengths = knn_edges(X, neighbours, self.same_person_bound, forbidden, exact=not large)
        clock("graph")
        labels = communities(n, edges, weights, self.seed, large)
        clock("leiden")
        labels = merge_close_clusters(X, labels, forbidden, self.merge_tolerance,
                                      self.same_person_bound, edges)
        clock("merge")
        Z = centred(X)
        if self.refine:
            labels = refine_at_scale(Z, labels, edges, lengths) if large else refine_by_silhouette(Z, labels)
            clock("refine")
        if self.strangers:
            labels = leave_strangers_alone(Z, labels, edges=edges if large else None)
            # the repair (base) would otherwise leave pairs behind after this step
            labels = repair_cannot_link(X, labels, forbidden)
            labels = split_unlikely_pairs(Z, labels, neighbours if large else None)
            clock("strangers")
        return labels


class _Clock:
    """Adds the seconds since the last call to ``timings[step]``."""

    def __init__(self, timings: dict):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - self.last
        self.last = now


def centred(X: np.ndarray) -> np.ndarray:
    """Unit vectors after removing the collection's mean face (float32 in, float32 out)."""
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    Z = Z - Z.mean(axis=0)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def pair_distances(X: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 17) -> np.ndarray:
    """``|X[a] - X[b]|`` for index arrays ``a``, ``b``, in chunks (float32, bounded memory)."""
    out = np.empty(len(a), np.float32)
    for lo in range(0, len(a), chunk):
        diff = X[a[lo:lo + chunk]] - X[b[lo:lo + chunk]]
        out[lo:lo + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


class OriginalDistance:
    """Distances in the model's own space from distances in the centred space, ``O(1)`` a pair.

    With ``u = x / |x|``, ``m`` the mean of the ``u`` and ``c = (u - m) / |u - m|`` (what
    :func:`centred` returns), ``u = m + r c``, so ``u.v = |m|^2 + r_u m.c_u + r_v m.c_v +
    r_u r_v (1 - |c_u - c_v|^2 / 2)`` and ``|x - y|^2 = |x|^2 + |y|^2 - 2 |x| |y| u.v``: a
    few numbers per face instead of a 128-d gather per pair.
    """

    def __init__(self, X: np.ndarray):
        X = np.asarray(X, dtype=np.float64)
        self.norm = np.linalg.norm(X, axis=1)
        U = X / self.norm[:, None]
        mean = U.mean(axis=0)
        self.mean_squared = float(mean @ mean)
        offset = U @ mean - self.mean_squared  # (u - m).m
        self.r = np.sqrt(np.maximum((U ** 2).sum(axis=1) - 2 * (U @ mean) + self.mean_squared, 0))
        self.mc = offset / np.maximum(self.r, 1e-12)

    def __call__(self, a: np.ndarray, b: np.ndarray, centred_distance: np.ndarray) -> np.ndarray:
        cos = 1 - centred_distance.astype(np.float64) ** 2 / 2
        dot = (self.mean_squared + self.r[a] * self.mc[a] + self.r[b] * self.mc[b]
               + self.r[a] * self.r[b] * cos)
        squared = self.norm[a] ** 2 + self.norm[b] ** 2 - 2 * self.norm[a] * self.norm[b] * dot
        return np.sqrt(np.maximum(squared, 0)).astype(np.float32)


class NeighbourLists:
    """Each face's nearest other faces in the centred space, nearest first.

    ``index`` (n, k) int64 and ``distance`` (n, k) float32; a row may end in entries with
    index -1 (fewer neighbours found) and infinite distance.
    """

    def __init__(self, index: np.ndarray, distance: np.ndarray):
        self.index, self.distance = index, distance

    @classmethod
    def search(cls, Z: np.ndarray, k: int) -> NeighbourLists:
        """Exact neighbours up to :data:`EXACT_LIMIT` faces, HNSW (faiss) above."""
        k = max(min(k, len(Z) - 1), 1)
        if len(Z) <= EXACT_LIMIT:
            return cls(*_exact_neighbours(Z, k))
        return cls(*_hnsw_neighbours(Z, k))

    def first(self, k: int) -> NeighbourLists:
        return NeighbourLists(self.index[:, :k], self.distance[:, :k])

    def near_duplicates(self, X: np.ndarray, radius: float, forbidden: PairSet) -> np.ndarray:
        """:func:`near_duplicates` with the neighbours as the candidates."""
        rows = np.repeat(np.arange(len(X)), self.index.shape[1])
        cols = self.index.ravel()
        close = cols >= 0
        rows, cols = rows[close], cols[close]
        close = OriginalDistance(X)(rows, cols, self.distance.ravel()[close]) <= radius
        return _components(len(X), rows[close], cols[close], forbidden)

    def collapse(self, copy_of: np.ndarray, Z: np.ndarray) -> NeighbourLists:
        """The lists of the kept faces (one per near-duplicate group, in the new centred space
        ``Z``): a neighbour stands for its group, repeats and the face's own group go."""
        keep = np.unique(copy_of, return_index=True)[1]
        index = self.index[keep]
        mapped = np.where(index >= 0, copy_of[np.maximum(index, 0)], -1)
        mapped[mapped == np.arange(len(keep))[:, None]] = -1
        order = np.argsort(mapped, axis=1, kind="stable")
        ordered = np.take_along_axis(mapped, order, axis=1)
        repeat = np.zeros_like(ordered, dtype=bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        gone = np.zeros_like(repeat)
        np.put_along_axis(gone, order, repeat, axis=1)
        mapped[gone] = -1
        valid = mapped >= 0
        distance = np.full(mapped.shape, np.inf, np.float32)
        rows = np.repeat(np.arange(len(keep)), mapped.shape[1]).reshape(mapped.shape)
        distance[valid] = pair_distances(Z, rows[valid], mapped[valid])
        order = np.argsort(distance, axis=1, kind="stable")
        return NeighbourLists(np.where(np.take_along_axis(valid, order, axis=1),
                                       np.take_along_axis(mapped, order, axis=1), -1),
                              np.take_along_axis(distance, order, axis=1))


def _exact_neighbours(Z: np.ndarray, k: int, block: int = 1024):
    """Brute force, blocked: each face's ``k`` nearest others, nearest first."""
    n = len(Z)
    squared = np.einsum("ij,ij->i", Z, Z)
    index = np.empty((n, k), np.int64)
    distance = np.empty((n, k), np.float32)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        d2 = squared[lo:hi, None] + squared[None, :] - 2 * (Z[lo:hi] @ Z.T)
        d2[np.arange(hi - lo), np.arange(lo, hi)] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n else np.argsort(d2, axis=1)[:, :k]
        part_d = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(part_d, axis=1, kind="stable")
        index[lo:hi] = np.take_along_axis(part, order, axis=1)
        distance[lo:hi] = np.sqrt(np.maximum(np.take_along_axis(part_d, order, axis=1), 0))
    return index, distance


def _hnsw_neighbours(Z: np.ndarray, k: int):
    """Approximate neighbours from a faiss HNSW index over ``Z``; each face finds itself
    first, which is dropped."""
    n = len(Z)
    ids, d2 = _hnsw_search(Z, Z, k + 1)
    mine = ids == np.arange(n)[:, None]
    mine[~mine.any(axis=1), -1] = True  # not found itself: drop the farthest instead
    mine[np.cumsum(mine, axis=1) > 1] = False
    found = ids[~mine].reshape(n, k)
    distance = np.sqrt(np.maximum(d2[~mine].reshape(n, k), 0))
    distance[found < 0] = np.inf
    return found, distance


def _hnsw_search(base: np.ndarray, queries: np.ndarray, k: int):
    """(indices, squared distances) of each query's ``k`` nearest rows of ``base``, from a
    faiss HNSW index.

    The index is built on one thread (a parallel build inserts rows in an order that varies
    from run to run, and so would the clusters); the search runs on every core and is
    deterministic. -1 where fewer are found.
    """
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    threads = faiss.omp_get_max_threads()
    index = faiss.IndexHNSWFlat(base.shape[1], HNSW_M)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
    try:
        faiss.omp_set_num_threads(1)
        index.add(base)
    finally:
        faiss.omp_set_num_threads(threads)
    ids = np.empty((len(queries), k), np.int64)
    d2 = np.empty((len(queries), k), np.float32)
    for lo in range(0, len(queries), 1 << 16):
        d2[lo:lo + (1 << 16)], ids[lo:lo + (1 << 16)] = index.search(
            np.ascontiguousarray(queries[lo:lo + (1 << 16)], dtype=np.float32), k)
    return ids, d2


def _components(n: int, rows: np.ndarray, cols: np.ndarray, forbidden: PairSet) -> np.ndarray:
    """Connected components of the pairs (rows, cols) that are not forbidden, numbered by
    their first face."""
    allowed = ~forbidden.contains(rows, cols) & (rows != cols)
    graph = coo_matrix((np.ones(int(allowed.sum()), np.int8), (rows[allowed], cols[allowed])), shape=(n, n))
    membership = connected_components(graph, directed=False)[1]
    return np.unique(membership, return_inverse=True)[1]


def near_duplicates(X: np.ndarray, radius: float, forbidden) -> np.ndarray:
    """Group index per face: faces closer than ``radius`` (resized or re-saved copies of one
    photo) share a group, so duplicates neither dominate a neighbourhood nor shrink the
    measured spread of a person. Exact (blocked brute force)."""
    X = np.asarray(X, dtype=np.float32)
    if not isinstance(forbidden, PairSet):
        forbidden = PairSet(len(X), *np.asarray(list(forbidden), dtype=np.int64).reshape(-1, 2).T)
    squared = np.einsum("ij,ij->i", X, X)
    rows, cols = [], []
    for lo in range(0, len(X), 1024):
        d2 = squared[lo:lo + 1024, None] + squared[None, :] - 2 * (X[lo:lo + 1024] @ X.T)
        i, j = np.nonzero(d2 <= radius ** 2 * 1.01)  # candidates, checked exactly below
        i = i + lo
        later = i < j
        rows.append(i[later])
        cols.append(j[later])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    close = pair_distances(X, rows, cols) <= radius
    return _components(len(X), rows[close], cols[close], forbidden)


def knn_edges(X: np.ndarray, neighbours: NeighbourLists, bound: float, forbidden: PairSet,
              exact: bool = True):
    """Undirected kNN edges (a, b), a < b, with self-tuning heat-kernel weights and their
    lengths in the centred space.

    Edges are listed in the order a walk over each face's neighbours first meets them, and a
    pair found from both ends keeps its larger weight. Pairs farther apart than ``bound`` in
    the model's space, and forbidden pairs, are left out (distances from the embeddings, or
    with ``exact=False`` from the centred ones, :class:`OriginalDistance`).
    """
    index, distance = neighbours.index, neighbours.distance
    n, k = index.shape
    last = np.where(np.isfinite(distance), distance, -np.inf).max(axis=1, initial=-np.inf)
    scale = np.maximum(np.where(np.isfinite(last), last, 0), 1e-6).astype(np.float32)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = index.ravel()
    found = cols >= 0
    rows, cols, d = rows[found], cols[found], distance.ravel()[found]
    weights = np.exp(-d ** 2 / (scale[rows] * scale[cols]))
    keep = (pair_distances(X, rows, cols) if exact else OriginalDistance(X)(rows, cols, d)) <= bound
    rows, cols, weights, d = rows[keep], cols[keep], weights[keep], d[keep]
    low, high = np.minimum(rows, cols), np.maximum(rows, cols)
    allowed = ~forbidden.contains(low, high)
    low, high, weights, d = low[allowed], high[allowed], weights[allowed], d[allowed]
    del rows, cols, keep, allowed
    codes = low * n + high
    order = np.lexsort((-weights, codes))  # per pair: the largest weight first
    codes_sorted = codes[order]
    first = np.r_[True, codes_sorted[1:] != codes_sorted[:-1]] if len(codes) else np.zeros(0, bool)
    best = order[first]  # the entry with the largest weight
    # the order in which a walk over the rows first meets each pair
    group_start = np.flatnonzero(first)
    earliest = np.minimum.reduceat(order, group_start) if len(order) else np.zeros(0, np.int64)
    by_appearance = np.argsort(earliest, kind="stable")
    edges = np.column_stack([low[best], high[best]])[by_appearance]
    return edges, weights[best][by_appearance].astype(np.float64), d[best][by_appearance]


def communities(n: int, edges: np.ndarray, weights: np.ndarray, seed: int, large: bool) -> np.ndarray:
    """Leiden communities (modularity) of the weighted graph, seeded.

    Up to :data:`EXACT_LIMIT` faces leidenalg's optimiser (as the development sets are
    measured); above, igraph's own Leiden in C (the same objective, about ten times faster),
    with igraph's random numbers seeded for the call.
    """
    graph = igraph.Graph(n=n)
    for lo in range(0, len(edges), 1 << 20):  # lists in chunks: igraph reads numpy arrays slowly
        part = edges[lo:lo + (1 << 20)]
        graph.add_edges(list(zip(part[:, 0].tolist(), part[:, 1].tolist())))
    if not large:
        partition = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                             weights=weights.tolist(), seed=seed)
        return np.array(partition.membership)
    generator = random.Random(seed)
    igraph.set_random_number_generator(generator)
    try:
        graph.es["weight"] = weights
        clustering = graph.community_leiden(objective_function="modularity", weights="weight",
                                            n_iterations=2)
    finally:
        igraph.set_random_number_generator(random)
    return np.array(clustering.membership)


def merge_close_clusters(X, labels, forbidden, tolerance: float, bound: float,
                         edges: np.ndarray | None = None) -> np.ndarray:
    """Merge clusters while some pair is as close as a typical cluster is wide.

    Cluster distance is the RMS distance between their faces, computed from centroids and
    spreads. Only clusters joined by a graph edge (``edges``: face pairs) are compared, and
    merged clusters inherit their parts' neighbours; without ``edges`` every pair of clusters
    is a candidate. Each round merges every pair of clusters that are each other's nearest
    candidate (for this reducible linkage the result equals merging one pair at a time);
    clusters holding faces of the same photo never merge.
    """
    X = np.asarray(X, dtype=np.float32)
    labels = np.unique(labels, return_inverse=True)[1]
    if not isinstance(forbidden, PairSet):
        forbidden = PairSet(len(X), *np.asarray(list(forbidden), dtype=np.int64).reshape(-1, 2).T)
    clusters = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=clusters).astype(np.float64)
    members = csr_matrix((np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
                         shape=(clusters, len(labels)))
    means = np.asarray(members @ X, dtype=np.float64) / sizes[:, None]
    # mean squared distance to the centroid: E|x|^2 - |mean|^2, per cluster
    spread = np.maximum(np.bincount(labels, np.einsum("ij,ij->i", X, X).astype(np.float64), clusters) / sizes
                        - (means ** 2).sum(axis=1), 0)
    several = sizes >= 2
    if not several.any():
        return labels
    widths = np.sqrt(2 * spread[several] * sizes[several] / (sizes[several] - 1))
    threshold = min(bound, tolerance * float(np.median(widths)))
    if edges is None:
        a, b = np.triu_indices(clusters, 1)
    else:
        a, b = labels[edges[:, 0]], labels[edges[:, 1]]
    candidates = PairSet(clusters, a, b)
    apart = forbidden.relabel(labels, clusters)
    parent = np.arange(clusters)
    while len(candidates):
        a, b = candidates.pairs
        squared = (np.einsum("ij,ij->i", means[a], means[a]) + np.einsum("ij,ij->i", means[b], means[b])
                   - 2 * np.einsum("ij,ij->i", means[a], means[b]))
        rms = np.sqrt(np.maximum(squared, 0) + spread[a] + spread[b])
        rms[apart.contains(a, b)] = np.inf
        # each cluster's nearest candidate (the lowest index among equals)
        source, target, value = np.r_[a, b], np.r_[b, a], np.r_[rms, rms]
        order = np.lexsort((target, value, source))
        source, target, value = source[order], target[order], value[order]
        head = np.r_[True, source[1:] != source[:-1]]
        nearest = np.full(clusters, -1)
        nearest[source[head]] = target[head]
        distance = np.full(clusters, np.inf)
        distance[source[head]] = value[head]
        i = np.flatnonzero(nearest >= 0)
        j = nearest[i]
        mutual = (i < j) & (nearest[j] == i) & (distance[i] < threshold)
        i, j = i[mutual], j[mutual]
        if not len(i):
            break
        total = sizes[i] + sizes[j]
        merged = (sizes[i, None] * means[i] + sizes[j, None] * means[j]) / total[:, None]
        spread[i] = (sizes[i] * (spread[i] + ((means[i] - merged) ** 2).sum(axis=1))
                     + sizes[j] * (spread[j] + ((means[j] - merged) ** 2).sum(axis=1))) / total
        means[i], sizes[i], sizes[j] = merged, total, 0
        parent[j] = i
        step = np.arange(clusters)
        step[j] = i
        candidates = candidates.relabel(step, clusters)
        apart = apart.relabel(step, clusters)
    root = parent.copy()
    while True:  # follow each merged cluster to the one it joined last
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return np.unique(root[labels], return_inverse=True)[1]


# --- refinement: one shared average-linkage level, chosen by the silhouette ------------------

MAX_LEVELS = 128  # candidate levels evaluated (all merge heights when there are fewer)


def refine_by_silhouette(Z: np.ndarray, labels: np.ndarray, max_levels: int = MAX_LEVELS) -> np.ndarray:
    """Split communities at the average-linkage level that maximises the silhouette.

    Each community gets its own average-linkage tree (``O(m^2)`` for a community of ``m``
    faces, never the whole collection); every candidate cuts all trees at one shared level,
    so a level that splits one person's photo conditions apart also splits every other person
    and loses. The unrefined partition is a candidate. The silhouette uses root-mean-square
    distances, which centroids and spreads give exactly; a face's nearest other group is a
    sibling part of its community or the nearest other community (measured once), so the mean
    silhouette is a sum over communities, each evaluated once per distinct cut of its tree.
    It needs an alternative group, so a collection of one community is left as it is.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Centred, normalised embeddings.
    labels : ndarray of shape (n,)
        Communities.

    Returns
    -------
    ndarray of shape (n,)
        The chosen refinement of ``labels`` (labels 0..k-1).
    """
    labels = np.unique(labels, return_inverse=True)[1]
    if labels.max(initial=0) < 1:
        return labels
    outside = _rms_to_nearest_other(Z, labels, *_group_stats(Z, labels))
    trees = []
    for c in range(labels.max() + 1):
        members = np.flatnonzero(labels == c)
        if len(members) > 1:
            trees.append((members, linkage(pdist(Z[members]), "average")))
    if not trees:
        return labels
    levels = np.unique(np.concatenate([tree[:, 2] for _, tree in trees]))
    if len(levels) > max_levels:
        levels = np.quantile(levels, np.linspace(0, 1, max_levels))
    levels = np.r_[np.inf, levels[::-1]]  # no refinement, then from coarse to fine
    total = np.zeros(len(levels))
    cuts = []
    for members, tree in trees:
        # merges strictly below a level are kept: the number of parts at each level
        parts = len(members) - np.searchsorted(np.sort(tree[:, 2]), levels * (1 - 1e-9), side="left")
        parts[0] = 1
        distinct = np.unique(parts)
        split = cut_tree(tree, n_clusters=distinct)  # one column per number of parts
        scores = {k: _community_silhouette(Z[members], split[:, i], outside[members])
                  for i, k in enumerate(distinct)}
        total += np.array([scores[k] for k in parts])
        cuts.append((parts, distinct, split))
    best = int(np.argmax(total))  # the coarsest of equals: levels run from coarse to fine
    if total[best] <= total[0] + 1e-9:
        best = 0
    refined = labels * len(Z)
    for (members, _), (parts, distinct, split) in zip(trees, cuts):
        refined[members] += split[:, int(np.searchsorted(distinct, parts[best]))]
    return np.unique(refined, return_inverse=True)[1]


def _community_silhouette(Z: np.ndarray, parts: np.ndarray, outside: np.ndarray) -> float:
    """Sum of the RMS silhouettes of one community's faces split into ``parts``.

    A face's own-group distance is the RMS distance to the other faces of its part; its
    nearest alternative is the nearest sibling part or ``outside`` (the nearest other
    community). Faces alone score 0 (Rousseeuw).
    """
    parts = np.unique(parts, return_inverse=True)[1]
    sizes, centroids, spread = _group_stats(Z, parts)
    own = sizes[parts]
    to_parts = (((Z ** 2).sum(axis=1)[:, None] + (centroids ** 2).sum(axis=1)[None, :]
                 - 2 * Z @ centroids.T).clip(min=0) + spread[None, :])
    a = np.sqrt(to_parts[np.arange(len(Z)), parts] * own / np.maximum(own - 1, 1))
    to_parts[np.arange(len(Z)), parts] = np.inf
    b = np.minimum(np.sqrt(to_parts.min(axis=1)), outside)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0).sum())


def _group_stats(Z: np.ndarray, labels: np.ndarray, chunk: int = 1 << 16):
    """Sizes, centroids (float64) and mean squared distance to the centroid of each group."""
    sizes = np.bincount(labels).astype(np.float64)
    members = csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))),
                         shape=(len(sizes), len(labels)))
    centroids = np.asarray(members @ Z, dtype=np.float64) / sizes[:, None]
    squared = np.empty(len(Z))
    for lo in range(0, len(Z), chunk):
        squared[lo:lo + chunk] = ((Z[lo:lo + chunk] - centroids[labels[lo:lo + chunk]]) ** 2).sum(axis=1)
    spread = np.bincount(labels, squared, len(sizes)) / sizes
    return sizes, centroids, spread


def _rms_to_nearest_other(Z, labels, sizes, centroids, spread, near: int = 16) -> np.ndarray:
    """RMS distance from each face to the faces of the nearest group other than its own.

    The mean squared distance from ``z`` to a group is ``|z - centroid|^2 + spread``; the
    nearest ``near`` centroids are searched.
    """
    if len(sizes) < 2:
        return np.full(len(Z), np.inf)
    near = min(near + 1, len(sizes))
    distance, index = NearestNeighbors(n_neighbors=near).fit(centroids).kneighbors(Z)
    squared = distance ** 2 + spread[index]
    squared[index == labels[:, None]] = np.inf
    return np.sqrt(squared.min(axis=1))


# --- the refinement on large collections: a sparse hierarchy, the level chosen the same way ------

REFINE_LEVELS = 24  # candidate levels on large collections
SILHOUETTE_SAMPLE = 20_000  # faces whose silhouette is measured at each level (seeded)


def refine_at_scale(Z: np.ndarray, labels: np.ndarray, edges: np.ndarray, lengths: np.ndarray,
                    levels: int = REFINE_LEVELS, sample: int = SILHOUETTE_SAMPLE,
                    seed: int = 0) -> np.ndarray:
    """:func:`refine_by_silhouette` for collections too large for a linkage tree per community.

    The same choice: every community is split at one shared level of a hierarchy, the level
    with the highest mean silhouette (the unrefined partition a candidate, the coarsest of
    equals wins). What is cheaper:

    * the hierarchy is RMS linkage (average linkage of squared distances) grown only along
      graph edges inside a community, level by level (:func:`_sparse_levels`): at each level
      every group joins its nearest linked group while that is nearer than the level, so a
      level costs a few passes over the edges; the levels are quantiles of the ``lengths`` of
      those edges (centred space);
    * the silhouette is measured on a seeded sample of faces, a face's nearest alternative
      being the nearest of the :data:`NEAR_GROUPS` parts nearest to its own among those that
      share an edge with it, or the nearest other community (:class:`_NearestOtherGroup`).

    Memory ``O(n k)``; time ``O(n k)`` a pass.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    n = len(Z)
    if labels.max(initial=0) < 1:
        return labels
    inside = labels[edges[:, 0]] == labels[edges[:, 1]]
    a, b = edges[inside, 0], edges[inside, 1]
    if not len(a):
        return labels
    cuts = np.unique(np.quantile(lengths[inside], np.linspace(0, 1, levels + 1)[1:]))
    partitions = _sparse_levels(Z, a, b, cuts)
    faces = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    sizes, centroids, spread = _group_stats(Z, labels)
    group, to_group = _NearestOtherGroup(Z, labels)(labels, sizes, centroids)
    found = group >= 0
    outside = np.full(n, np.inf)
    outside[found] = np.sqrt(to_group[found] ** 2 + spread[group[found]])
    candidates = [labels] + partitions[::-1]  # no refinement, then from coarse to fine
    scores = [_sample_silhouette(Z, parts, faces, a, b, outside) for parts in candidates]
    best = int(np.argmax(scores))
    if scores[best] <= scores[0] + 1e-9:
        return labels
    return np.unique(candidates[best], return_inverse=True)[1]


def _sparse_levels(Z: np.ndarray, a: np.ndarray, b: np.ndarray, cuts: np.ndarray) -> list[np.ndarray]:
    """The partitions of an RMS-linkage hierarchy grown along the pairs (a, b), one per level
    in ``cuts`` (ascending): at each level, every group joins its nearest linked group while
    that is nearer than the level (Boruvka rounds). A group is named by its smallest face.
    Each round computes distances only for the pairs whose groups changed."""
    n = len(Z)
    means = np.array(Z, dtype=np.float32)
    second = np.einsum("ij,ij->i", means, means).astype(np.float64)  # mean squared norm
    sizes = np.ones(n)
    group = np.arange(n)
    codes = PairSet(n, a, b).codes
    rms = _linkage(means, second, codes // n, codes % n)
    partitions = []
    for cut in cuts:
        while len(codes):
            a, b = codes // n, codes % n
            best = np.full(n, np.inf)
            np.minimum.at(best, a, rms)
            np.minimum.at(best, b, rms)
            joins = rms < cut
            at_a = joins & (rms == best[a])  # a's nearest is b (and near enough)
            at_b = joins & (rms == best[b])
            if not (at_a.any() or at_b.any()):
                break
            link_from, link_to = np.r_[a[at_a], b[at_b]], np.r_[b[at_a], a[at_b]]
            graph = coo_matrix((np.ones(len(link_from), np.int8), (link_from, link_to)), shape=(n, n))
            component = connected_components(graph, directed=False)[1]
            involved = np.unique(np.r_[link_from, link_to])  # the groups that merge
            rep = np.full(component.max() + 1, n)
            np.minimum.at(rep, component[involved], involved)
            new = np.arange(n)
            new[involved] = rep[component[involved]]
            touched = np.unique(new[involved])
            weight = csr_matrix((sizes[involved], (np.searchsorted(touched, new[involved]),
                                                   np.arange(len(involved)))),
                                shape=(len(touched), len(involved)))
            total = np.asarray(weight.sum(axis=1)).ravel()
            merged_means = (weight @ means[involved].astype(np.float64)) / total[:, None]
            second[touched] = (weight @ second[involved]) / total
            sizes[involved] = 0
            sizes[touched] = total
            means[touched] = merged_means
            group = new[group]
            changed = np.zeros(n, bool)
            changed[involved] = True
            moved = changed[a] | changed[b]
            kept_codes, kept_rms = codes[~moved], rms[~moved]  # still sorted
            a, b = new[a[moved]], new[b[moved]]
            keep = a != b
            fresh = _sorted_unique(np.minimum(a[keep], b[keep]) * n + np.maximum(a[keep], b[keep]))
            where = np.minimum(np.searchsorted(kept_codes, fresh), max(len(kept_codes) - 1, 0))
            if len(kept_codes):
                fresh = fresh[kept_codes[where] != fresh]
            fresh_rms = _linkage(means, second, fresh // n, fresh % n)
            codes = np.r_[kept_codes, fresh]
            order = np.argsort(codes, kind="stable")  # two sorted runs: a merge
            codes, rms = codes[order], np.r_[kept_rms, fresh_rms][order]
        partitions.append(group.copy())
    return partitions


def _linkage(means: np.ndarray, second: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS distance between the faces of groups a and b: sqrt(q_a + q_b - 2 m_a . m_b), with
    m a group's mean and q its mean squared norm."""
    dots = np.empty(len(a))
    for lo in range(0, len(a), 1 << 17):
        dots[lo:lo + (1 << 17)] = np.einsum("ij,ij->i", means[a[lo:lo + (1 << 17)]], means[b[lo:lo + (1 << 17)]])
    return np.sqrt(np.maximum(second[a] + second[b] - 2 * dots, 0))


def _sample_silhouette(Z, parts, faces, a, b, outside) -> float:
    """Mean RMS silhouette of the sampled ``faces`` under ``parts``: the RMS distance to the
    face's own part against the nearest of the :data:`NEAR_GROUPS` parts nearest to it among
    those linked to it by an edge (a, b) inside its community, or ``outside`` (the nearest
    other community) if nearer. Faces alone score 0."""
    parts = np.unique(parts, return_inverse=True)[1]
    sizes, centroids, spread = _group_stats(Z, parts)
    z = Z[faces].astype(np.float64)
    own = parts[faces]
    m = sizes[own]
    a_rms = np.sqrt((((z - centroids[own]) ** 2).sum(axis=1) + spread[own]) * m / np.maximum(m - 1, 1))
    sampled = np.zeros(len(sizes), bool)
    sampled[own] = True
    near_sample = sampled[parts]
    incident = near_sample[a] | near_sample[b]  # edges that touch a sampled part
    pa, pb = parts[a[incident]], parts[b[incident]]
    cross = pa != pb
    pa, pb = pa[cross], pb[cross]
    source, target = np.r_[pa, pb], np.r_[pb, pa]
    wanted = sampled[source]
    codes = _sorted_unique(source[wanted] * len(sizes) + target[wanted])
    source, target = codes // len(sizes), codes % len(sizes)
    distance = np.sqrt(((centroids[source] - centroids[target]) ** 2).sum(axis=1))
    order = np.lexsort((target, distance, source))
    source, target = source[order], target[order]
    rank = np.arange(len(source)) - np.searchsorted(source, source)
    near = rank < NEAR_GROUPS
    table = np.full((len(sizes), NEAR_GROUPS), -1)
    table[source[near], rank[near]] = target[near]
    b_rms = outside[faces].copy()
    for column in range(NEAR_GROUPS):
        q = table[own, column]
        rows = np.flatnonzero(q >= 0)
        rms = np.sqrt(((z[rows] - centroids[q[rows]]) ** 2).sum(axis=1) + spread[q[rows]])
        b_rms[rows] = np.minimum(b_rms[rows], rms)
    with np.errstate(invalid="ignore"):
        s = np.where(m > 1, (b_rms - a_rms) / np.maximum(np.maximum(a_rms, b_rms), 1e-12), 0.0)
    return float(np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0).mean())


# --- strangers: members against the collection's own "other person" distances ------------------


def leave_strangers_alone(Z: np.ndarray, labels: np.ndarray, rounds: int = 20,
                          edges: np.ndarray | None = None) -> np.ndarray:
    """Make unknown each face that is, by this collection's own measure, a stranger to its group.

    Two distributions are measured in the collection, both as distances to a person's *true*
    centre (the centroid's own noise removed, so groups of any size compare):

    * members: each face's distance to the centroid of the rest of its group;
    * others: each face's distance to the nearest *other* group's centroid, a sample of how
      close a different person comes to someone's centre in this collection.

    A two-component mixture of the members' distances -- a normal component for true members
    and the measured "others" density for strangers, with the strangers' share fitted by EM --
    gives each member a posterior probability of being a stranger; above one half (the Bayes
    decision), the face leaves (the worst of each group per round, then everything is
    measured again). Costs ``O(n)`` per round plus a nearest-centroid search: over every
    group, or, given the graph's ``edges`` (large collections), over the
    :data:`NEAR_GROUPS` groups whose centroids are nearest to the face's own group's.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    nearest_other = _NearestOtherGroup(Z, labels) if edges is not None else None
    for _ in range(rounds):
        labels = np.unique(labels, return_inverse=True)[1]
        sizes, centroids, spread = _group_stats(Z, labels)
        own = sizes[labels]
        members = own >= 2
        groups = np.flatnonzero(sizes >= 2)
        if members.sum() < 3 or len(groups) < 2:
            break
        # E|z - centroid of the other m-1|^2 = (1 + 1/(m-1)) sigma^2 for a member
        member_distance = np.empty(len(Z))
        for lo in range(0, len(Z), 1 << 16):
            z, m, c = Z[lo:lo + (1 << 16)], own[lo:lo + (1 << 16), None], centroids[labels[lo:lo + (1 << 16)]]
            rest = (c * m - z) / np.maximum(m - 1, 1)
            member_distance[lo:lo + len(z)] = np.sqrt(((z - rest) ** 2).sum(axis=1) * (m[:, 0] - 1) / m[:, 0])
        member_distance = member_distance[members]
        if nearest_other is None:
            distance, index = NearestNeighbors(n_neighbors=2).fit(centroids[groups]).kneighbors(Z)
            first_is_own = groups[index[:, 0]] == labels
            g = groups[np.where(first_is_own, index[:, 1], index[:, 0])]
            to_other = np.where(first_is_own, distance[:, 1], distance[:, 0])
        else:
            g, to_other = nearest_other(labels, sizes, centroids)
        found = g >= 0  # always, unless the search is restricted to candidates
        g, to_other = g[found], to_other[found]
        if not len(g):
            break
        other_distance = np.sqrt(np.maximum(to_other ** 2 - spread[g] / (sizes[g] - 1), 0))
        stranger = _stranger_posterior(member_distance, other_distance) > 0.5
        if not stranger.any():
            break
        faces = np.flatnonzero(members)[stranger]
        order = np.lexsort((faces, -member_distance[stranger], labels[faces]))  # by group, worst first
        faces = faces[order]
        leaving = faces[np.r_[True, labels[faces][1:] != labels[faces][:-1]]]
        labels[leaving] = labels.max() + 1 + np.arange(len(leaving))
        if nearest_other is not None:
            nearest_other.left(leaving)
    return np.unique(labels, return_inverse=True)[1]


def split_unlikely_pairs(Z: np.ndarray, labels: np.ndarray,
                         neighbours: NeighbourLists | None = None, seed: int = 0) -> np.ndarray:
    """Split each group of two faces whose distance looks like two different people's.

    A group of two has one distance as its only evidence (the stranger test needs a group's
    spread, which two faces cannot give), and a kNN graph pairs every lone face with its
    nearest neighbour. So the distance is weighed between two samples of this collection:
    same person, the distances between faces of one group of three or more; different
    people, each face's distance to its nearest face *outside* its group (what pairing a
    stranger with the face nearest to it gives).
    Where the second density is the higher, the two faces are left alone (equal priors: no
    threshold). The nearest outside face is searched exactly up to :data:`EXACT_LIMIT`
    faces, among each face's graph ``neighbours`` above (faces with none outside their
    group among them are left out of the sample).
    """
    labels = np.unique(labels, return_inverse=True)[1]
    sizes = np.bincount(labels)
    if not (sizes == 2).any():
        return labels
    same = _within_group_sample(Z, labels, sizes, seed)
    outside = _nearest_outside(Z, labels, neighbours)
    if len(same) < 3 or len(outside) < 3:
        return labels
    paired = np.flatnonzero(sizes[labels] == 2)
    paired = paired[np.argsort(labels[paired], kind="stable")]
    a, b = paired[0::2], paired[1::2]
    d = pair_distances(Z, a, b)
    apart = _binned_density(outside)(d) > _binned_density(same)(d)
    labels = labels.copy()
    labels[b[apart]] = labels.max() + 1 + np.arange(int(apart.sum()))
    return np.unique(labels, return_inverse=True)[1]


SAME_SAMPLE = 1 << 18  # within-group distances sampled, at most (plus one per face)


def _within_group_sample(Z: np.ndarray, labels: np.ndarray, sizes: np.ndarray, seed: int,
                         partners: int = 16) -> np.ndarray:
    """Distances between faces of one group of three or more: each face to ``partners``
    other members of its group (to all of them in a group of up to ``partners + 1``, so the
    sample does not depend on the order of the faces; drawn at random, seeded, in a larger
    one). Groups of two are what is being tested, so they do not count."""
    grouped = np.flatnonzero(sizes[labels] >= 3)
    if not len(grouped):
        return np.zeros(0)
    partners = max(1, min(partners, SAME_SAMPLE // len(grouped)))  # a density needs no more
    order = grouped[np.lexsort((np.random.default_rng(seed).random(len(grouped)), labels[grouped]))]
    size = sizes[labels[order]]
    start = np.repeat(np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]]),
                      sizes[np.unique(labels[order])])
    position = np.arange(len(order)) - start
    a, b = [], []
    for shift in range(1, partners + 1):  # the member ``shift`` places on, cyclically
        has = size > shift
        a.append(order[has])
        b.append(order[start[has] + (position[has] + shift) % size[has]])
    return pair_distances(Z, np.concatenate(a), np.concatenate(b)).astype(np.float64)


def _nearest_outside(Z: np.ndarray, labels: np.ndarray, neighbours: NeighbourLists | None,
                     block: int = 1024) -> np.ndarray:
    """Each face's distance to its nearest face in another group (finite values only)."""
    if neighbours is not None:
        index, distance = neighbours.index, neighbours.distance
        other = (index >= 0) & (labels[np.maximum(index, 0)] != labels[:, None])
        nearest = np.where(other, distance, np.inf).min(axis=1)
    else:
        squared = np.einsum("ij,ij->i", Z, Z)
        nearest = np.empty(len(Z))
        for lo in range(0, len(Z), block):
            d2 = squared[lo:lo + block, None] + squared[None, :] - 2 * (Z[lo:lo + block] @ Z.T)
            d2[labels[lo:lo + block, None] == labels[None, :]] = np.inf
            nearest[lo:lo + block] = np.sqrt(np.maximum(d2.min(axis=1), 0))
    return nearest[np.isfinite(nearest)].astype(np.float64)


NEAR_GROUPS = 8  # candidate other groups per group on large collections


def _nearest_rows(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices (into ``base``) of each query's ``k`` nearest rows: exact up to
    :data:`EXACT_LIMIT` rows, HNSW above; -1 where fewer are found."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(base))
    if len(base) <= EXACT_LIMIT:
        squared = np.einsum("ij,ij->i", base, base)
        out = np.empty((len(queries), k), np.int64)
        for lo in range(0, len(queries), 1024):
            d2 = squared[None, :] - 2 * (queries[lo:lo + 1024] @ base.T)
            part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(base) else np.argsort(d2, axis=1)
            order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
            out[lo:lo + 1024] = np.take_along_axis(part, order, axis=1)
        return out
    return _hnsw_search(base, queries, k)[0]


class _NearestOtherGroup:
    """Each face's nearest other group (centroid), searched among few candidates.

    The candidates of a face are the :data:`NEAR_GROUPS` groups (of two faces or more) whose
    centroids are nearest to its own group's, and, once the face has left, the group it left.
    Groups are followed by their faces through the rounds (they only lose faces), so the
    candidates are chosen once.
    """

    def __init__(self, Z: np.ndarray, labels: np.ndarray):
        self.Z = Z
        self.home = labels.copy()
        sizes, centroids, _ = _group_stats(Z, labels)
        targets = np.flatnonzero(sizes >= 2)
        self.candidates = np.full((len(sizes), NEAR_GROUPS + 2), -1)
        self.candidates[:, 0] = np.arange(len(sizes))
        if len(targets):
            near = _nearest_rows(centroids[targets], centroids, NEAR_GROUPS + 1)
            self.candidates[:, 1:1 + near.shape[1]] = np.where(near >= 0, targets[np.maximum(near, 0)], -1)
        self.gone = np.zeros(len(Z), bool)

    def left(self, faces: np.ndarray) -> None:
        self.gone[faces] = True

    def __call__(self, labels: np.ndarray, sizes: np.ndarray, centroids: np.ndarray):
        """(nearest other group, distance to its centroid) per face; -1 and inf when no
        candidate is a group of two or more."""
        current = np.full(len(self.candidates), -1)
        stay = ~self.gone
        current[self.home[stay]] = labels[stay]
        centroids = centroids.astype(np.float32)
        n = len(labels)
        best = np.full(n, -1)
        distance = np.full(n, np.inf)
        for lo in range(0, n, 1 << 15):
            hi = min(lo + (1 << 15), n)
            cand = self.candidates[self.home[lo:hi]]
            cand = np.where(cand >= 0, current[np.maximum(cand, 0)], -1)
            usable = (cand >= 0) & (cand != labels[lo:hi, None])
            usable &= sizes[np.maximum(cand, 0)] >= 2
            diff = centroids[np.maximum(cand, 0)] - self.Z[lo:hi, None, :]
            d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            d[~usable] = np.inf
            pick = d.argmin(axis=1)
            distance[lo:hi] = d[np.arange(hi - lo), pick]
            best[lo:hi] = np.where(np.isfinite(distance[lo:hi]), cand[np.arange(hi - lo), pick], -1)
        return best, distance


def _stranger_posterior(x: np.ndarray, others: np.ndarray, iterations: int = 50) -> np.ndarray:
    """P(stranger | distance) under a mixture: normal members + the measured "others" density."""
    density = _binned_density(others)
    f_other = density(x)
    centre = float(np.median(x))
    scale = 1.4826 * float(np.median(np.abs(x - centre))) + 1e-6
    share = 0.1
    posterior = np.zeros(len(x))
    for _ in range(iterations):
        f_member = np.exp(-0.5 * ((x - centre) / scale) ** 2) / (scale * np.sqrt(2 * np.pi))
        posterior = share * f_other / (share * f_other + (1 - share) * f_member + 1e-300)
        share = float(posterior.mean())
        weight = 1 - posterior
        if weight.sum() <= 0:
            break
        centre = float((weight * x).sum() / weight.sum())
        scale = float(np.sqrt((weight * (x - centre) ** 2).sum() / weight.sum())) + 1e-6
    return posterior


def _binned_density(sample: np.ndarray, bins: int = 512):
    """A Gaussian kernel density of ``sample`` (Scott's bandwidth) on a grid: ``O(n)``."""
    sample = np.asarray(sample, dtype=np.float64)
    bandwidth = max(float(sample.std()) * len(sample) ** (-1 / 5), 1e-3)
    low, high = sample.min() - 4 * bandwidth, sample.max() + 4 * bandwidth
    counts, edges = np.histogram(sample, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    step = centres[1] - centres[0]
    offsets = np.arange(-int(4 * bandwidth / step) - 1, int(4 * bandwidth / step) + 2) * step
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2) / (bandwidth * np.sqrt(2 * np.pi))
    smooth = np.convolve(counts, kernel, mode="same") / len(sample)
    return lambda x: np.interp(x, centres, smooth, left=0.0, right=0.0)
