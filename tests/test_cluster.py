"""Clustering on synthetic embeddings with a known truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facecluster.cluster import ALGORITHMS, GraphClusterer, get_clusterer
from facecluster.cluster._graph import split_unlikely_pairs
from facecluster.cluster.base import repeated_in_photo
from facecluster.evaluate.metrics import bcubed_prf


def people(counts, spread=0.12, separation=0.75, dim=128, seed=0):
    """Unit-ish embeddings: one centre per person, photos scattered around it.

    ``separation`` is the typical distance between two people's centres, ``spread`` about a
    photo's distance from its person's centre (dlib-like scales: ~0.4 within, ~0.8 between).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim))
    centres *= separation / np.sqrt(2) / np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.concatenate([c + rng.normal(scale=spread / np.sqrt(dim), size=(n, dim)) * np.sqrt(2)
                        for c, n in zip(centres, counts)])
    truth = np.repeat(np.arange(len(counts)), counts)
    return X, truth


@pytest.mark.parametrize("counts", [[8, 6, 5, 4], [40, 30, 20, 10, 5, 3], [150] * 6])
def test_default_finds_the_people_at_any_size(counts):
    X, truth = people(counts)
    labels = GraphClusterer().fit_predict(X)
    assert bcubed_prf(truth, labels)[2] > 0.97
    assert len(set(labels[labels >= 0])) == len(counts)


def test_default_adapts_to_a_tightly_packed_population():
    """People closer together than one person's photos are wide apart in absolute terms
    (the East Asian faces case): fixed thresholds merge them, the default does not."""
    X, truth = people([60] * 8, spread=0.16, separation=0.36)
    dbscan = get_clusterer("dbscan", eps=0.5, min_samples=5).fit_predict(X)
    default = GraphClusterer().fit_predict(X)
    assert bcubed_prf(truth, default)[2] > 0.9
    assert bcubed_prf(truth, default)[2] > bcubed_prf(truth, dbscan)[2] + 0.3


def test_faces_in_one_photo_are_never_one_person():
    X, truth = people([10, 10])
    photo = np.full(len(X), -1)
    photo[[0, 1, 2]] = 7  # three faces of person 0 in one photo: impossible, so split them
    for name in ALGORITHMS:
        labels = get_clusterer(name).fit_predict(X, cannot_link=photo)
        together = labels[[0, 1, 2]]
        clustered = together[together >= 0]
        assert len(clustered) == len(set(clustered.tolist())), name


def test_must_link_keeps_a_track_together():
    X, truth = people([10, 10])
    track = np.full(len(X), -1)
    track[[0, 15]] = 3  # one track spanning both people (a tracker error) stays one person
    labels = GraphClusterer().fit_predict(X, must_link=track)
    assert labels[0] == labels[15]


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_collections(n):
    X, _ = people([n], spread=0.1) if n else (np.zeros((0, 128)), None)
    for name in ALGORITHMS:
        labels = get_clusterer(name).fit_predict(X)
        assert labels.shape == (n,)
        if n == 1:
            assert labels.tolist() == [-1]  # alone: unknown
        if n >= 2 and name == "graph":
            assert len(set(labels.tolist())) == 1 and labels[0] >= 0


def test_two_different_people_are_not_merged_in_a_tiny_set():
    X, truth = people([2, 2, 1], separation=0.9)
    labels = GraphClusterer().fit_predict(X)
    assert bcubed_prf(truth, labels)[2] == 1.0


def test_deterministic_with_a_seed():
    X, _ = people([30, 20, 20, 10], spread=0.2, separation=0.5, seed=3)
    first = GraphClusterer(seed=1).fit_predict(X)
    assert np.array_equal(first, GraphClusterer(seed=1).fit_predict(X))
    assert np.array_equal(first, GraphClusterer(seed=1).fit_predict(X.copy()))


def test_labels_are_ordered_by_size_and_singletons_are_unknown():
    X, truth = people([3, 9, 5, 1], separation=0.9)
    labels = GraphClusterer().fit_predict(X)
    sizes = [int((labels == k).sum()) for k in range(labels.max() + 1)]
    assert sizes == sorted(sizes, reverse=True) == [9, 5, 3]
    assert labels[-1] == -1


def test_seed_recipes_reproduce_their_parameters():
    X, truth = people([10, 10, 10], separation=0.9)
    assert get_clusterer("chinese-whispers", threshold=0.5).get_params() == {"threshold": 0.5}
    assert get_clusterer("dbscan").get_params() == {"eps": 0.5, "min_samples": 5}
    assert get_clusterer("hac").get_params() == {"linkage": "average", "threshold": None, "sim": 0.5}
    for name in ("chinese-whispers", "dbscan", "hac"):
        assert bcubed_prf(truth, get_clusterer(name).fit_predict(X))[2] == 1.0
    # a threshold below every within-person distance leaves everyone unknown
    assert (get_clusterer("chinese-whispers", threshold=0.01).fit_predict(X) == -1).all()


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown algorithm 'kmeans'"):
        get_clusterer("kmeans")


def test_near_duplicates_with_photo_constraints():
    """Copies of a group photo: each copy's faces are cannot-linked, the copies are duplicates."""
    X, truth = people([6, 6, 6], separation=0.9)
    copies = np.r_[X, X + 1e-4]  # the whole collection twice (resized copies)
    photo = np.r_[np.arange(18) // 3 * 0 - 1, np.full(18, -1)]
    photo[[0, 6, 12]] = 1  # one group photo with one face of each person
    photo[[18, 24, 30]] = 2  # and its copy
    labels = GraphClusterer().fit_predict(copies, cannot_link=photo)
    assert bcubed_prf(np.r_[truth, truth], labels)[2] == 1.0


def test_strangers_are_left_alone_and_people_stay_together():
    """Five people with many photos plus one photo each of 15 others, everyone within dlib's
    0.6 of someone else: the one-offs stay unknown (a kNN graph alone groups them all), the
    people are found whole."""
    X, truth = people([25] * 5 + [1] * 15, separation=0.55, seed=4)
    one_off = np.repeat(np.arange(20), [25] * 5 + [1] * 15) >= 5
    labels = GraphClusterer().fit_predict(X)
    assert np.mean(labels[one_off] == -1) >= 0.9
    assert bcubed_prf(truth[~one_off], labels[~one_off])[2] > 0.97
    graph_only = GraphClusterer(refine=False, strangers=False).fit_predict(X)
    assert np.mean(graph_only[one_off] == -1) < 0.5  # what the steps fix


def test_strangers_the_graph_pairs_up_are_left_alone():
    """Thirty one-offs among five people: a kNN graph pairs each lone face with its nearest
    one, and a pair has no spread for the stranger test to judge. Pairs whose distance looks
    like the collection's nearest-different-person distances are split (half of the one-offs
    were paired without it), while real pairs, as close as one person's photos, stay."""
    X, truth = people([25] * 5 + [1] * 30, separation=0.55, seed=1)
    labels = GraphClusterer().fit_predict(X)
    assert np.mean(labels[truth >= 5] == -1) >= 0.75
    for seed in range(3):
        X, truth = people([25] * 5 + [2] * 8, separation=0.55, seed=seed)
        labels = GraphClusterer().fit_predict(X)
        assert bcubed_prf(truth, labels)[2] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 7), min_size=3, max_size=40))
def test_the_pair_test_only_ever_splits_groups_of_two(seed, groups):
    Z = np.random.default_rng(seed).normal(size=(len(groups), 8)).astype(np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    before = np.unique(groups, return_inverse=True)[1]
    after = split_unlikely_pairs(Z, before)
    sizes = np.bincount(before)
    for g in range(len(sizes)):
        parts = set(after[before == g].tolist())
        assert len(parts) == 1 or (sizes[g] == 2 and len(parts) == 2)
    assert all(len(set(before[after == p].tolist())) == 1 for p in set(after.tolist()))


def test_small_collection_with_one_or_two_photos_per_person():
    """Twenty faces of twelve people: the sparse graph groups different people, the
    refinement separates them again."""
    X, truth = people([2] * 8 + [1] * 4, spread=0.12, separation=0.55, seed=5)
    assert bcubed_prf(truth, GraphClusterer().fit_predict(X))[2] > 0.95
    assert bcubed_prf(truth, GraphClusterer(refine=False, strangers=False).fit_predict(X))[2] < 0.8


def test_refinement_keeps_a_large_collection_as_the_graph_found_it():
    X, truth = people([40, 30, 30, 20], spread=0.16, separation=0.6, seed=6)
    refined = GraphClusterer().fit_predict(X)
    plain = GraphClusterer(refine=False, strangers=False).fit_predict(X)
    assert bcubed_prf(truth, refined)[2] >= bcubed_prf(truth, plain)[2] > 0.95


def test_same_person_several_times_in_one_photo():
    """A collage: person 0 three times and person 1 once in photo 0. Two ordinary group photos
    show how close different people seen together come; the three copies are far closer."""
    X, truth = people([6, 6, 6], separation=0.9)
    photo = np.full(len(X), -1)
    photo[[0, 1, 2, 6]] = 0  # the collage
    photo[[3, 7, 12]] = 1
    photo[[4, 8, 13]] = 2
    repeated = repeated_in_photo(X, photo)
    assert repeated[0] == repeated[1] == repeated[2] >= 0 and repeated[6] != repeated[0]
    assert (repeated[[3, 4, 7, 8, 12, 13]] == -1).all()
    labels = GraphClusterer().fit_predict(X, cannot_link=photo)
    assert labels[0] == labels[1] == labels[2] >= 0 and labels[6] != labels[0]
    assert bcubed_prf(truth, labels)[2] == 1.0
    for name in ALGORITHMS:  # the shared constraint machinery: every algorithm may keep them
        labels = get_clusterer(name).fit_predict(X, cannot_link=photo)
        for group in ([3, 7, 12], [4, 8, 13]):
            clustered = labels[group][labels[group] >= 0]
            assert len(clustered) == len(set(clustered.tolist())), name


def test_no_repeat_is_assumed_without_another_photo_to_compare():
    X, _ = people([10, 10])
    photo = np.full(len(X), -1)
    photo[[0, 1, 2]] = 7  # one photo only: nothing says how close different people come
    assert (repeated_in_photo(X, photo) == -1).all()
