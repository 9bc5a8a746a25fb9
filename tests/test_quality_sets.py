"""Clustering behaviour on real development photos (skips when ../shared/datasets is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dataset
from facecluster.cluster import ALGORITHMS, get_clusterer
from facecluster.cluster.base import repeated_in_photo
from facecluster.scan import scan
from facecluster.store import Store


@pytest.fixture(scope="module")
def dlib_examples(tmp_path_factory):
    """(embeddings, photo index, is-in-the-collage) of every face of dlib_examples."""
    root = dataset("dlib_examples")
    db = tmp_path_factory.mktemp("dlib_examples") / "faces.db"
    scan(root, db, workers=1, quiet=True)
    with Store(db) as store:
        ids, _, X = store.embeddings()
        path = {face["id"]: face["path"] for face in store.faces()}
    photos = np.array([str(path[int(i)]) for i in ids])
    return X, np.unique(photos, return_inverse=True)[1], np.char.endswith(photos, "bald_guys.jpg")


def test_a_collage_keeps_each_actor_together(dlib_examples):
    """dlib's bald_guys.jpg shows four actors six times each. Faces of one photo are different
    people -- except repeats closer than any two people seen together in the collection's
    other photos (0.50 apart at the closest here): those may be one person, so each actor
    becomes one person instead of six unknown faces, and every other photo's faces stay apart."""
    X, photo, collage = dlib_examples
    assert collage.sum() >= 24  # 4 x 6 (the detector may add one)

    repeated = repeated_in_photo(X, photo)
    assert (repeated[~collage] == -1).all()  # ordinary group photos: nobody twice
    groups = np.bincount(repeated[collage & (repeated >= 0)])
    assert (groups >= 4).sum() == 4 and groups.max() <= 6  # four actors, none mixed with another

    for name in ALGORITHMS:
        labels = get_clusterer(name).fit_predict(X, cannot_link=photo)
        sizes = np.bincount(labels[collage & (labels >= 0)])
        assert (sizes >= 4).sum() == 4 and sizes.max() <= 6, name
        assert (labels[collage] >= 0).sum() >= 20, name  # without the rule: all 24 unknown
        for p in np.unique(photo[~collage]):
            clustered = labels[(photo == p) & (labels >= 0)]
            assert len(clustered) == len(set(clustered.tolist())), (name, p)


def test_strangers_of_group_photos_stay_unknown(dlib_examples):
    """dlib_examples' group photos show strangers, nobody twice (apart from the collage).
    The graph paired seven of them up (a young and an old woman, two different men, ...);
    now every face outside the collage is unknown, and the collage's actors are found."""
    X, photo, collage = dlib_examples
    labels = get_clusterer("graph").fit_predict(X, cannot_link=photo)
    assert (labels[~collage] == -1).all(), np.bincount(labels[~collage & (labels >= 0)])
    assert len(set(labels[collage & (labels >= 0)].tolist())) == 4
