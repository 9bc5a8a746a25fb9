"""Unknown faces grouped by similarity, so that several can be named at once.

The cut is the collection's own: the typical distance between two photos of one person, measured
on the people the clustering already found (average linkage merges groups whose faces are, on
average, that close). Without people yet, dlib's usual same-person distance is used.
"""

from __future__ import annotations

import numpy as np

from facecluster.store import Store
from facecluster.store import people as P

DEFAULT_CUT = 0.45
CUT_RANGE = (0.3, 0.5)  # tighter than dlib's 0.6 "different people" bound: a wrong group costs more
MAX_HAC = 3000  # average linkage up to this many faces (a dense distance matrix); beyond, components

def unknown_groups(store: Store) -> list[list[int]]:
    """Unknown face ids in groups of look-alikes, largest group first, best face first in each."""
    faces = P.person_faces(store, None)
    return group_faces(faces, P.face_embeddings(store, faces), same_person_distance(store))


def group_faces(faces: list[int], X: np.ndarray, cut: float) -> list[list[int]]:
    """Faces (in their order) grouped where their average distance is below ``cut``."""
    if len(faces) == 0:
        return []
    labels = _labels(np.asarray(X, np.float64), cut)
    groups: dict[int, list[int]] = {}
    for face, label in zip(faces, labels):
        groups.setdefault(int(label), []).append(face)
    return sorted(groups.values(), key=lambda g: -len(g))  # stable: best faces' groups first


def same_person_distance(store: Store, people: int = 50, faces: int = 30) -> float:
    """The median, over the largest people, of the mean distance between two of their faces."""
    from scipy.spatial.distance import pdist

    spreads = []
    for person in P.people_page(store, limit=people)[0]:
        ids = P.person_faces(store, person.id, limit=faces)
        if len(ids) >= 2:
            spreads.append(float(np.mean(pdist(P.face_embeddings(store, ids)))))
    if not spreads:
        return DEFAULT_CUT
    return float(np.clip(np.median(spreads), *CUT_RANGE))


def _labels(X: np.ndarray, cut: float) -> np.ndarray:
    if len(X) == 1:
        return np.zeros(1, int)
    if len(X) <= MAX_HAC:
        from scipy.cluster.hierarchy import fcluster, linkage

        return fcluster(linkage(X, "average"), cut, "distance")
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import radius_neighbors_graph

    graph = radius_neighbors_graph(X, 0.8 * cut, mode="connectivity")  # single links: stay tighter
    return connected_components(graph, directed=False)[1]
