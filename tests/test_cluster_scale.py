"""The clusterer's large-collection machinery: sparse constraints, approximate neighbours, the
steps that replace quadratic ones, and the constraints still honoured by all of them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facecluster.cluster import GraphClusterer
from facecluster.cluster import _graph
from facecluster.cluster.base import PairSet, forbidden_pairs, repair_cannot_link, repeated_in_photo
from facecluster.evaluate.metrics import bcubed_prf
from tests.test_cluster import people

pair_lists = st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=60)


@given(pair_lists, st.tuples(st.integers(0, 29), st.integers(0, 29)))
def test_pair_set_is_the_set_of_unordered_pairs(pairs, probe):
    expected = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
    got = PairSet(30, [a for a, _ in pairs], [b for _, b in pairs])
    assert list(got) == sorted(expected) and len(got) == len(expected)
    assert (probe in got) == ((min(probe), max(probe)) in expected)
    a, b = np.array(probe * 3).reshape(2, 3)
    assert got.contains(a, b).tolist() == [(min(x, y), max(x, y)) in expected for x, y in zip(a, b)]


@given(pair_lists, st.lists(st.integers(0, 9), min_size=30, max_size=30))
def test_pair_set_relabel_maps_and_drops_pairs_that_collapse(pairs, mapping):
    got = PairSet(30, [a for a, _ in pairs], [b for _, b in pairs]).relabel(np.array(mapping), 10)
    expected = {(min(mapping[a], mapping[b]), max(mapping[a], mapping[b])) for a, b in pairs
                if a != b and mapping[a] != mapping[b]}
    assert set(got) == expected


def _forbidden_reference(node_of, cannot_link, repeated):
    """The Python-set construction the vectorised one replaced."""
    pairs = set()
    for group in np.unique(cannot_link[cannot_link >= 0]):
        faces = np.flatnonzero(cannot_link == group)
        nodes, first = np.unique(node_of[faces], return_index=True)
        copies = repeated[faces][first]
        pairs.update((int(a), int(b)) for i, a in enumerate(nodes) for j, b in enumerate(nodes[i + 1:], i + 1)
                     if copies[i] < 0 or copies[i] != copies[j])
    return pairs


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(-1, 5), st.integers(0, 11), st.integers(-1, 2)), min_size=1, max_size=40))
def test_forbidden_pairs_match_the_set_of_pairs(rows):
    cannot_link = np.array([r[0] for r in rows])
    node_of = np.unique([r[1] for r in rows], return_inverse=True)[1]
    repeated = np.array([r[2] for r in rows])
    assert set(forbidden_pairs(node_of, cannot_link, repeated)) == _forbidden_reference(node_of, cannot_link, repeated)


def _repair_reference(X, labels, forbidden):
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


@settings(max_examples=60)
@given(st.integers(0, 10_000), pair_lists)
def test_repair_matches_the_pair_by_pair_repair(seed, pairs):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4))
    labels = rng.integers(-1, 4, size=30)
    forbidden = PairSet(30, [a for a, _ in pairs], [b for _, b in pairs])
    assert np.array_equal(repair_cannot_link(X, labels, forbidden), _repair_reference(X, labels, set(forbidden)))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_faces_of_one_photo_stay_apart_unless_repeated(seed):
    """Random group photos over five people: no two faces of one photo share a person unless
    repeated_in_photo lifted the constraint (one person shown twice)."""
    rng = np.random.default_rng(seed)
    X, _ = people([12, 10, 8, 8, 6], separation=0.7, seed=seed % 50)
    photo = np.full(len(X), -1)
    chosen = rng.permutation(len(X))[:30]
    photo[chosen] = np.arange(30) // 3
    labels = GraphClusterer().fit_predict(X, cannot_link=photo)
    repeated = repeated_in_photo(X, photo)
    for group in range(10):
        faces = np.flatnonzero(photo == group)
        for i in faces:
            for j in faces[faces > i]:
                if labels[i] >= 0 and labels[i] == labels[j]:
                    assert repeated[i] >= 0 and repeated[i] == repeated[j]


def test_approximate_neighbours_equal_the_exact_ones_on_a_small_set():
    X, _ = people([60] * 10, spread=0.16, separation=0.6, seed=2)
    Z = _graph.centred(X.astype(np.float32))
    exact_index, exact_distance = _graph._exact_neighbours(Z, 10)
    index, distance = _graph._hnsw_neighbours(Z, 10)
    assert np.mean(np.sort(index, axis=1) == np.sort(exact_index, axis=1)) > 0.99
    assert np.allclose(distance, exact_distance, atol=1e-5) or np.mean(index == exact_index) > 0.99


@pytest.fixture
def small_limit(monkeypatch):
    """Run the large-collection path (HNSW, igraph's Leiden, sparse refinement and stranger
    search) on small inputs."""
    monkeypatch.setattr(_graph, "EXACT_LIMIT", 50)


def test_large_path_finds_the_people_and_repeats(small_limit):
    X, truth = people([80, 60, 50, 40, 30, 20, 10, 5] + [1] * 10, spread=0.14, separation=0.8, seed=7)
    labels = GraphClusterer().fit_predict(X)
    assert bcubed_prf(truth, labels)[2] > 0.95
    assert np.array_equal(labels, GraphClusterer().fit_predict(X))


def test_large_path_gives_the_exact_labels_on_separated_people(small_limit):
    X, truth = people([70, 50, 40, 30, 20], spread=0.12, separation=0.9, seed=8)
    large = GraphClusterer().fit_predict(X)
    _graph.EXACT_LIMIT = 10_000
    exact = GraphClusterer().fit_predict(X)
    assert np.array_equal(large, exact)
    assert bcubed_prf(truth, exact)[2] == 1.0


def test_large_path_honours_constraints_and_near_duplicates(small_limit):
    X, truth = people([40, 30, 30, 20], separation=0.9, seed=9)
    X = np.r_[X, X[:10] + 1e-4]  # ten re-saved copies
    truth = np.r_[truth, truth[:10]]
    photo = np.full(len(X), -1)
    photo[[0, 40, 70]] = 1  # one face of each of three people in one photo
    photo[[1, 2]] = 2  # two faces of person 0 in one photo: one must leave
    photo[[5, 125]] = 3  # a face and its copy in one photo (a collage): closer than any pair
    assert repeated_in_photo(X, photo)[[1, 2, 5, 125]].tolist()[:2] == [-1, -1]
    labels = GraphClusterer().fit_predict(X, cannot_link=photo)
    assert labels[1] != labels[2] or labels[1] < 0
    assert labels[5] == labels[125] >= 0
    assert len({labels[0], labels[40], labels[70]}) == 3
    assert (labels[120:] == labels[:10]).sum() >= 9  # copies go with their originals
    assert bcubed_prf(truth, labels)[2] > 0.95


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_original_distances_from_centred_ones(seed):
    rng = np.random.default_rng(seed)
    X = (1.3 / np.sqrt(16) + 0.15 * rng.normal(size=(60, 16))).astype(np.float32)
    Z = _graph.centred(X)
    a, b = rng.integers(0, 60, (2, 200))
    centred_distance = np.linalg.norm(Z[a].astype(np.float64) - Z[b], axis=1)
    direct = np.linalg.norm(X[a].astype(np.float64) - X[b], axis=1)
    assert np.allclose(_graph.OriginalDistance(X)(a, b, centred_distance), direct, atol=1e-5)


def test_merge_compares_only_linked_clusters():
    """Two tight clusters far apart in the graph (no edge) never merge, however close their
    centres: only graph neighbours are compared."""
    X = np.r_[np.zeros((5, 4)), np.full((5, 4), 0.01)].astype(np.float32)
    X[:, 0] += np.r_[np.arange(5), np.arange(5)] * 1e-3
    labels = np.repeat([0, 1], 5)
    no_edge = np.array([[0, 1], [5, 6]])
    merged = _graph.merge_close_clusters(X, labels, PairSet(10), 10.0, 1.0, no_edge)
    assert len(set(merged.tolist())) == 2
    merged = _graph.merge_close_clusters(X, labels, PairSet(10), 10.0, 1.0, np.r_[no_edge, [[0, 5]]])
    assert len(set(merged.tolist())) == 1
