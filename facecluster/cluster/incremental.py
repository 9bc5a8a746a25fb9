"""Add new faces to the people who already exist, without re-clustering the library.

A new face goes to the person whose centre is nearest, in the centred space the default
clusterer works in (:func:`facecluster.cluster._graph.centred`, with the existing collection's
mean face). It joins that person when the collection's own stranger test says it is a member:
the two-component mixture of :func:`facecluster.cluster._graph._stranger_posterior`, the same
collection-adaptive bound the default clusterer uses to let a face leave its group, with its
"stranger" density measured on this collection's "face to the nearest other person's centre"
distances. The mixture is fitted to the new faces' distances together with as many members'
distances to their own centre (at least :data:`MEMBERS`): the members anchor what a member's
distance is, and the share of strangers is the new faces' own rather than that of a library
whose members have all passed the test already. Distances are to a person's *true* centre: the
centroid's own noise (the person's variance over its number of faces) is taken off, which is
right for a member and for a stranger alike.

A face never joins a person it was said not to be, nor a person that already has a face in the
same photo (nor two new faces of one photo the same person), nor a person whose mean face is
beyond the model's same-person bound in the model's own space.

The faces that join no one are clustered among themselves and with the unknown faces near them
by the clusterer given; groups holding at least one new face become new people, the rest stay
unknown. Existing people are never changed.

Costs: ``O(n d)`` to centre and summarise ``n`` faces, ``O((m + s) P d)`` to search ``P``
person centres for ``m`` new faces and a sample of ``s`` faces (the collection's distances),
``O(r u d)`` to find the unknown faces (``u``) near the ``r`` faces that joined no one.

>>> inc = add_faces(X, labels, new, frames, get_clusterer("graph"))   # doctest: +SKIP
>>> inc.joined            # person label per new face, -1: joins no one
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from facecluster.cluster._graph import _stranger_posterior

SAMPLE = 5_000        # faces that measure the collection's two distance distributions
CHUNK = 512           # query rows per distance block (a block is CHUNK x people floats)
CANDIDATES = 5        # nearest allowed people kept per new face (for same-photo conflicts)
NEAR_UNKNOWN = 10     # unknown faces clustered with each face that joined no one (at most)
MEMBERS = 1_000       # members' distances beside the new faces' in the mixture (at least)


@dataclass
class Increment:
    """Where the new faces go.

    Attributes
    ----------
    joined : ndarray of shape (m,)
        Person label each new face joins (in the order of ``np.flatnonzero(new)``), -1: none.
    posterior : ndarray of shape (m,)
        P(stranger) of each new face for its nearest allowed person (1 where none is allowed).
    distance : ndarray of shape (m,)
        Distance of each new face to that person's centre in the model's own space.
    rest : ndarray
        Indices (into the collection) of the faces clustered anew: new faces that joined no
        one and the unknown faces near them.
    groups : ndarray
        Label of each face of ``rest``: a new person 0..g-1, or -1 (unknown).
    """

    joined: np.ndarray
    posterior: np.ndarray
    distance: np.ndarray
    rest: np.ndarray
    groups: np.ndarray


# --- the centred space -----------------------------------------------------------------------

def unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def centring_mean(X: np.ndarray) -> np.ndarray:
    """The collection's mean face, as :func:`facecluster.cluster._graph.centred` removes it."""
    return unit(np.asarray(X, np.float32)).mean(axis=0)


def centre(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Unit vectors after removing ``mean``: ``_graph.centred(X)`` when ``mean`` is X's own."""
    return unit(unit(np.asarray(X, np.float32)) - mean.astype(np.float32))


def centred_on(X: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """:func:`centre` on the mean face of the rows ``existing`` (a mask), in one pass."""
    U = unit(np.asarray(X, np.float32))
    mean = (U.sum(axis=0, dtype=np.float64) - U[~existing].sum(axis=0, dtype=np.float64)) / max(existing.sum(), 1)
    U -= mean.astype(np.float32)
    return unit(U)


# --- people ----------------------------------------------------------------------------------

def person_stats(Z: np.ndarray, labels: np.ndarray, count: int):
    """(sizes, centroids, spread) of the people ``0..count-1``: faces, mean of their rows of
    ``Z``, mean squared distance of their faces to it. Faces labelled -1 are left out."""
    member = np.flatnonzero(labels >= 0)
    sizes = np.bincount(labels[member], minlength=count).astype(np.float64)
    matrix = csr_matrix((np.ones(len(member), Z.dtype), (labels[member], member)), shape=(count, len(Z)))
    centroids = np.asarray(matrix @ Z, np.float64) / np.maximum(sizes, 1)[:, None]
    squares = np.einsum("ij,ij->i", Z, Z)[member]
    # mean |z - c|^2 = mean |z|^2 - |c|^2
    spread = np.bincount(labels[member], squares, minlength=count) / np.maximum(sizes, 1) \
        - (centroids ** 2).sum(axis=1)
    return sizes, centroids.astype(np.float32), np.maximum(spread, 0)


def person_variance(sizes: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Each person's variance of a face about its true centre (``spread m / (m - 1)``); for a
    person of one face, the median over the people of two faces or more."""
    several = sizes >= 2
    variance = np.zeros(len(sizes))
    variance[several] = spread[several] * sizes[several] / (sizes[several] - 1)
    variance[~several] = np.median(variance[several]) if several.any() else 0.0
    return variance


def measurable(labels: np.ndarray) -> bool:
    """Whether the collection has what the stranger test measures: two people of two faces
    or more (so a face has an *other* person) and three faces in them."""
    sizes = np.bincount(labels[labels >= 0])
    return int((sizes >= 2).sum()) >= 2 and int(sizes[sizes >= 2].sum()) >= 3


def nearest(Q: np.ndarray, C: np.ndarray, k: int, forbidden=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``C`` to each row of ``Q`` (exact, in blocks of rows).

    ``forbidden``: (query rows, C rows) that may not be chosen. Returns (index, squared
    distance), both (len(Q), k), nearest first; a forbidden or missing choice has distance inf.
    """
    k = min(k, len(C))
    C = np.asarray(C, np.float32)
    index = np.zeros((len(Q), k), np.int64)
    squared = np.full((len(Q), k), np.inf)
    norms = (C ** 2).sum(axis=1)
    rows, cols = forbidden if forbidden is not None else (np.zeros(0, int), np.zeros(0, int))
    for start in range(0, len(Q), CHUNK):
        block = np.asarray(Q[start:start + CHUNK], np.float32)
        d = block @ C.T  # |q - c|^2 - |q|^2, the query's own norm added after the choice
        d *= -2
        d += norms
        inside = (rows >= start) & (rows < start + len(block))
        d[rows[inside] - start, cols[inside]] = np.inf
        top, top_d = _smallest(d, k)
        span = slice(start, start + len(block))
        index[span] = top
        squared[span] = np.maximum(top_d + (block ** 2).sum(axis=1)[:, None], 0)
    return index, squared


def _smallest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and value of the ``k`` smallest entries of each row, smallest first."""
    rows = np.arange(len(d))
    if k <= 2:  # argmin is several times faster than a partition
        first = d.argmin(axis=1)
        if k == 1:
            return first[:, None], d[rows, first][:, None]
        kept = d[rows, first].copy()
        d[rows, first] = np.inf
        second = d.argmin(axis=1)
        values = np.stack([kept, d[rows, second]], axis=1)
        d[rows, first] = kept
        return np.stack([first, second], axis=1), values
    top = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(k), (len(d), 1))
    values = np.take_along_axis(d, top, axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)


# --- the collection's two distributions --------------------------------------------------------

def collection_distances(Z, labels, sizes, centroids, spread, sample: int = SAMPLE, seed: int = 0):
    """The two samples the stranger test compares, measured on up to ``sample`` faces.

    Returns
    -------
    members : ndarray
        Distance of member faces to their own person's true centre (the centroid's own noise
        removed: ``|z - c| sqrt(m / (m - 1))``), people of two faces or more.
    others : ndarray
        Distance of faces (members and unknown) to the nearest *other* person's centre
        (``sqrt(|z - c|^2 - spread / (m - 1))``), a sample of how close a different person
        comes to someone's centre in this collection.
    """
    rng = np.random.default_rng(seed)
    existing = np.flatnonzero(labels >= -1)
    picked = np.sort(rng.choice(existing, min(sample, len(existing)), replace=False))
    own = labels[picked]
    m = np.where(own >= 0, sizes[np.maximum(own, 0)], 0)
    member = m >= 2
    to_own = np.linalg.norm(Z[picked[member]] - centroids[own[member]], axis=1)
    members = to_own * np.sqrt(m[member] / (m[member] - 1))
    groups = np.flatnonzero(sizes >= 2)
    index, squared = nearest(Z[picked], centroids[groups], 2)
    first_is_own = groups[index[:, 0]] == own
    column = first_is_own.astype(int)
    other = groups[index[np.arange(len(picked)), column]]
    to_other = squared[np.arange(len(picked)), column]
    others = np.sqrt(np.maximum(to_other - spread[other] / (sizes[other] - 1), 0))
    return members, others[np.isfinite(others)]


# --- matching ----------------------------------------------------------------------------------

def one_per_photo(candidates: np.ndarray, squared: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Which candidate (column) each face takes, so that no two faces of one photo take one
    person: of two, the nearer keeps it and the other tries its next candidate. -1: none left.
    """
    m, k = candidates.shape
    choice = np.zeros(m, np.int64)
    rows = np.arange(m)
    for _ in range(k):
        live = np.flatnonzero((choice < k) & np.isfinite(squared[rows, np.minimum(choice, k - 1)]))
        person = candidates[live, choice[live]]
        order = np.lexsort((squared[live, choice[live]], person, frames[live]))
        same = (np.diff(frames[live][order]) == 0) & (np.diff(person[order]) == 0)
        losers = live[order[1:][same]]
        if not len(losers):
            break
        choice[losers] += 1
    taken = choice < k
    taken[taken] &= np.isfinite(squared[rows[taken], choice[taken]])
    return np.where(taken, choice, -1)


def match_new_faces(X: np.ndarray, labels: np.ndarray, new: np.ndarray, frames: np.ndarray,
                    not_person=(), bound: float = 0.6, sample: int = SAMPLE,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person each new face joins, by the collection's own stranger test.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Embeddings of the whole collection, new faces included (the model's own space).
    labels : ndarray of shape (n,)
        Person of each existing face (any integer ids, e.g. the store's), -1 for unknown;
        ignored for new faces.
    new : ndarray of bool, shape (n,)
        The faces to place.
    frames : ndarray of shape (n,)
        Photo (or frame) of each face: two faces of one photo are different people.
    not_person : iterable of (face index, person)
        A face that must never join that person.
    bound : float
        The model's same-person bound: no face joins a person whose centre is farther.
    sample, seed : int
        Faces sampled to measure the collection's two distributions, and the sampling seed.

    Returns
    -------
    joined, posterior, distance : ndarray of shape (m,)
        For the new faces in index order: the person joined (-1: none), P(stranger)
        for the nearest allowed person, and the distance to its centre in the model's space.
    """
    existing = (labels >= 0) & ~new
    people, dense = np.unique(labels[existing], return_inverse=True)  # labels 0..P-1, all used
    labels = np.where(new, -2, -1)
    labels[existing] = dense.ravel()
    known = set(people.tolist())
    not_person = [(f, int(np.searchsorted(people, p))) for f, p in not_person if p in known]
    count = len(people)
    Z = centred_on(X, ~new)
    sizes, centroids, spread = person_stats(Z, np.where(labels >= 0, labels, -1), count)
    members, others = collection_distances(Z, labels, sizes, centroids, spread, sample, seed)
    placed = np.flatnonzero(new)
    candidates, squared = nearest(Z[placed], centroids, CANDIDATES,
                                  _forbidden(placed, labels, frames, not_person))
    choice = one_per_photo(candidates, squared, frames[placed])
    rows = np.arange(len(placed))
    person = np.where(choice >= 0, candidates[rows, np.maximum(choice, 0)], -1)
    m = sizes[np.maximum(person, 0)]
    noise = person_variance(sizes, spread)[np.maximum(person, 0)] / m  # of the centroid
    x = np.sqrt(np.maximum(squared[rows, np.maximum(choice, 0)] - noise, 0))
    posterior = np.ones(len(placed))
    has = np.flatnonzero(person >= 0)
    if len(has):
        rng = np.random.default_rng(seed)
        anchor = np.sort(rng.choice(members, min(len(members), max(MEMBERS, len(has))), replace=False))
        posterior[has] = _stranger_posterior(np.r_[anchor, x[has]], others)[len(anchor):]
    distance = _original_distance(X, labels, placed, person, count)
    joins = (person >= 0) & (posterior <= 0.5) & (distance <= bound)
    return np.where(joins, people[np.maximum(person, 0)], -1), posterior, distance


def _forbidden(placed, labels, frames, not_person) -> tuple[np.ndarray, np.ndarray]:
    """(new face row, person) pairs a new face may not join: people it was said not to be,
    and people with a face in its photo."""
    row_of = np.full(len(labels), -1)
    row_of[placed] = np.arange(len(placed))
    pairs = [(row_of[f], p) for f, p in not_person if 0 <= f < len(labels) and row_of[f] >= 0]
    assigned = np.flatnonzero(labels >= 0)
    shared = assigned[np.isin(frames[assigned], frames[placed])]
    if len(shared):  # rescanned photos with a new face beside known ones: few
        photo_people: dict[int, set] = {}
        for face in shared:
            photo_people.setdefault(int(frames[face]), set()).add(int(labels[face]))
        beside = np.flatnonzero(np.isin(frames[placed], frames[shared]))
        pairs += [(row, p) for row in beside for p in photo_people[int(frames[placed[row]])]]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = np.array(pairs, np.int64).T
    return rows, cols


def _original_distance(X, labels, placed, person, count) -> np.ndarray:
    """Distance of each placed face to its person's mean face in the model's own space."""
    chosen = np.unique(person[person >= 0])
    member = np.flatnonzero(np.isin(labels, chosen))  # the faces of the chosen people only
    code = np.searchsorted(chosen, labels[member])
    matrix = csr_matrix((np.ones(len(member), np.float32), (code, member)), shape=(len(chosen), len(X)))
    means = np.asarray(matrix @ np.asarray(X, np.float32), np.float64) \
        / np.maximum(np.bincount(code, minlength=len(chosen)), 1)[:, None]
    at = np.searchsorted(chosen, np.maximum(person, 0)).clip(max=max(len(chosen) - 1, 0))
    distance = np.linalg.norm(X[placed] - means[at], axis=1) if len(chosen) else np.full(len(placed), np.inf)
    return np.where(person >= 0, distance, np.inf)


# --- the rest ----------------------------------------------------------------------------------

def near_unknown(X: np.ndarray, rest: np.ndarray, unknown: np.ndarray, bound: float,
                 near: int = NEAR_UNKNOWN) -> np.ndarray:
    """Unknown faces within ``bound`` (model space) of a face of ``rest``: up to ``near``
    nearest each, sorted. Only they can share a person with a face of ``rest``."""
    if not len(rest) or not len(unknown):
        return np.zeros(0, np.int64)
    index, squared = nearest(X[rest], X[unknown], near)
    return np.unique(unknown[index[squared <= bound ** 2]])


def cluster_rest(X: np.ndarray, rest: np.ndarray, unknown: np.ndarray, frames: np.ndarray,
                 clusterer, bound: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the faces that joined no one with the unknown faces near them.

    Returns (faces, labels): the faces clustered (indices, sorted) and a new person label per
    face, 0..g-1, for groups that hold a face of ``rest``; -1 for the others (unknown).
    """
    faces = np.union1d(rest, near_unknown(X, rest, unknown, bound))
    if len(faces) < 2:
        return faces, np.full(len(faces), -1)
    labels = np.asarray(clusterer.fit_predict(X[faces], cannot_link=frames[faces]))
    with_new = np.unique(labels[np.isin(faces, rest) & (labels >= 0)])
    kept = np.isin(labels, with_new)
    return faces, np.where(kept, np.searchsorted(with_new, labels), -1)


def add_faces(X: np.ndarray, labels: np.ndarray, new: np.ndarray, frames: np.ndarray, clusterer,
              not_person=(), sample: int = SAMPLE, seed: int = 0) -> Increment:
    """Place the new faces: join existing people, or form new people with each other and
    with unknown faces, or stay unknown. See the module docstring; arguments as in
    :func:`match_new_faces`, ``clusterer`` clusters the rest (its ``same_person_bound``, if it
    has one, is the bound)."""
    bound = float(getattr(clusterer, "same_person_bound", 0.6))
    joined, posterior, distance = match_new_faces(X, labels, new, frames, not_person, bound, sample, seed)
    placed = np.flatnonzero(new)
    rest = placed[joined < 0]
    unknown = np.flatnonzero(~new & (labels < 0))
    faces, groups = cluster_rest(X, rest, unknown, frames, clusterer, bound)
    return Increment(joined, posterior, distance, faces, groups)
