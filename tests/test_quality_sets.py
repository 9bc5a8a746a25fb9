"""Clustering behaviour on real development photos (skips when ../shared/datasets is absent)."""

from __future__ import annotations

import numpy as np

from conftest import dataset
from facecluster.cluster import ALGORITHMS, get_clusterer
from facecluster.cluster.base import repeated_in_photo
from facecluster.scan import scan
from facecluster.store import Store


def test_a_collage_keeps_each_actor_together(tmp_path):
    """dlib's bald_guys.jpg shows four actors six times each. Faces of one photo are different
    people -- except repeats closer than any two people seen together in the collection's
    other photos (0.50 apart at the closest here): those may be one person, so each actor
    becomes one person instead of six unknown faces, and every other photo's faces stay apart."""
    root = dataset("dlib_examples")
    db = tmp_path / "faces.db"
    scan(root, db, workers=1, quiet=True)
    with Store(db) as store:
        ids, _, X = store.embeddings()
        path = {face["id"]: face["path"] for face in store.faces()}
    photos = np.array([str(path[int(i)]) for i in ids])
    photo = np.unique(photos, return_inverse=True)[1]
    collage = np.char.endswith(photos, "bald_guys.jpg")
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
