"""Cluster the faces of a store into people, honouring every correction the user made.

The faces reach the clusterer in a stable order (photo path, frame time, box), so identical
scans give identical people whatever order worker processes finished in.

Constraints, for every algorithm:

* faces of one photo (or video frame) are different people; faces of one video track are one;
* confirmed faces of one person are one item (must-link), settled people are pairwise apart,
  a face the user said is not a person never joins that person;
* rejected faces are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from facecluster.cluster import DEFAULT_ALGORITHM, get_clusterer
from facecluster.cluster.base import union_groups
from facecluster.store import Store
from facecluster.store.people import Constraints, constraints, save_clustering

# A video track enters the clusterer as the mean of its faces, which averages away per-frame
# noise: two people's track means sit nearer each other than two single faces do (on the
# Hamilton clip Obama's track mean is 0.56-0.59 from Miranda's, under the photo bound 0.6).
VIDEO_SAME_PERSON_BOUND = 0.5


@dataclass
class ClusterReport:
    """What a clustering did."""

    algorithm: str
    params: dict
    faces: int = 0
    people: int = 0
    unknown: int = 0
    rejected: int = 0
    person_sizes: list[int] = field(default_factory=list)


def cluster_collection(db: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM, features=None,
                       feature_params: dict | None = None, **params) -> ClusterReport:
    """Group the stored faces by person and save the result (people keep their ids).

    ``features(store, face_ids, X)``, when given, returns what to cluster instead of the
    embeddings ``X`` (e.g. faces fused with clothing); ``feature_params`` are recorded with the
    run to say how.
    """
    with Store(db) as store:
        if algorithm == "graph" and store.db.execute("SELECT 1 FROM tracks LIMIT 1").fetchone():
            params.setdefault("same_person_bound", VIDEO_SAME_PERSON_BOUND)
        clusterer = get_clusterer(algorithm, **params)
        wanted = constraints(store)
        face_ids, X, frames, tracks = stable_faces(store, exclude=wanted.rejected)
        labels = np.zeros(0, int)
        if len(X):
            points = features(store, face_ids, X) if features else X
            labels = clusterer.fit_predict(points, cannot_link=frames,
                                           must_link=union_groups(tracks, _confirmed_groups(face_ids, wanted)),
                                           apart=_apart(face_ids, wanted))
        settings = {**clusterer.get_params(), **(feature_params or {})}
        run_id = store.start_run("cluster", {"algorithm": algorithm, **settings})
        save_clustering(store, face_ids, labels, membership_confidence(X, labels), run_id, wanted.confirmed)
        report = _report(store, algorithm, settings, len(X))
        store.finish_run(run_id, report.__dict__)
    return report


def stable_faces(store: Store, exclude=()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face ids, embeddings, frame group, track group) of the present faces, in a stable order:
    photo path, time in the video, box. Faces in ``exclude`` are left out."""
    ids, _, X = store.embeddings()
    rows = store.db.execute("SELECT f.id, m.path, f.media_id, f.time, f.track_id, f.left, f.top,"
                            " f.right, f.bottom FROM faces f JOIN media m ON m.id=f.media_id"
                            " WHERE m.status='ok'").fetchall()
    info = {r[0]: r for r in rows}
    keep = [i for i, f in enumerate(ids) if int(f) not in exclude]
    keep.sort(key=lambda i: _sort_key(info[int(ids[i])]))
    ids, X = ids[keep], X[keep]
    frame_of: dict = {}
    frames = np.array([frame_of.setdefault((info[int(f)][2], info[int(f)][3]), len(frame_of)) for f in ids],
                      dtype=np.int64)
    tracks = np.array([-1 if info[int(f)][4] is None else info[int(f)][4] for f in ids], dtype=np.int64)
    return ids, X, frames, tracks


def _sort_key(row) -> tuple:
    path = row[1]
    return (os.fsencode(path) if isinstance(path, str) else path,
            -1.0 if row[3] is None else row[3], row[5], row[6], row[7], row[8])


def _confirmed_groups(face_ids: np.ndarray, wanted: Constraints) -> np.ndarray:
    return np.array([wanted.confirmed.get(int(f), -1) for f in face_ids], dtype=np.int64)


def _apart(face_ids: np.ndarray, wanted: Constraints) -> list[tuple[int, int]]:
    """Index pairs that must stay apart: one face of each pair of settled people, and each face
    the user said is not a person against one confirmed face of that person."""
    first: dict[int, int] = {}
    for i, face in enumerate(face_ids):
        person = wanted.confirmed.get(int(face))
        if person is not None:
            first.setdefault(person, i)
    reps = sorted(first.values())
    pairs = [(a, b) for k, a in enumerate(reps) for b in reps[k + 1:]]
    index = {int(f): i for i, f in enumerate(face_ids)}
    pairs += [(index[face], first[person]) for face, person in wanted.not_person
              if face in index and person in first and index[face] != first[person]]
    return pairs


def membership_confidence(X: np.ndarray, labels: np.ndarray, bound: float = 0.6) -> np.ndarray:
    """How surely each face belongs to its person: 1 at the person's centre, 0 at ``bound``."""
    confidence = np.zeros(len(X))
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        distance = np.linalg.norm(X[members] - X[members].mean(axis=0), axis=1)
        confidence[members] = np.clip(1 - distance / bound, 0, 1)
    return confidence


def _report(store: Store, algorithm: str, settings: dict, faces: int) -> ClusterReport:
    sizes = [r[0] for r in store.db.execute(
        "SELECT COUNT(*) FROM assignments WHERE person_id IS NOT NULL GROUP BY person_id"
        " ORDER BY COUNT(*) DESC")]
    unknown = store.db.execute("SELECT COUNT(*) FROM assignments WHERE person_id IS NULL").fetchone()[0]
    rejected = store.db.execute("SELECT COUNT(*) FROM rejected r JOIN faces f ON f.id=r.face_id"
                                " JOIN media m ON m.id=f.media_id WHERE m.status='ok'").fetchone()[0]
    return ClusterReport(algorithm=algorithm, params=settings, faces=faces, people=len(sizes),
                         unknown=unknown, rejected=rejected, person_sizes=sizes)
