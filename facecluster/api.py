"""The Python API: a few plain verbs over a store file.

>>> import facecluster
>>> facecluster.scan("~/Pictures", "faces.db")                    # doctest: +SKIP
>>> people = facecluster.cluster("faces.db")                       # doctest: +SKIP
>>> facecluster.export("faces.db", "~/people")                     # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from facecluster.cluster import DEFAULT_ALGORITHM, get_clusterer
from facecluster.cluster.base import union_groups
from facecluster.corrections import replay
from facecluster.scan import ScanOptions, ScanReport, scan
from facecluster.store import Store

DEFAULT_DB_NAME = "faces.db"


@dataclass
class ClusterReport:
    """What a clustering did."""

    algorithm: str
    params: dict
    faces: int = 0
    people: int = 0
    unknown: int = 0
    person_sizes: list[int] = field(default_factory=list)


# A video track enters the clusterer as the mean of its faces, which averages away per-frame
# noise: two people's track means sit nearer each other than two single faces do (on the
# Hamilton clip Obama's track mean is 0.56-0.59 from Miranda's, under the photo bound 0.6).
VIDEO_SAME_PERSON_BOUND = 0.5


def cluster(db: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM, features=None,
            feature_params: dict | None = None, **params) -> ClusterReport:
    """Group the stored faces by person and save the result (people keep their ids).

    Faces of one photo are always different people; faces of one video track are always one;
    the user's corrections are honoured. ``features(store, face_ids, X)``, when given, returns
    what to cluster instead of the embeddings ``X`` (e.g. faces fused with clothing), and
    ``feature_params`` are recorded with the run to say how.

    Examples
    --------
    >>> cluster("faces.db", "chinese-whispers", threshold=0.5)  # doctest: +SKIP
    ClusterReport(algorithm='chinese-whispers', ..., people=12, unknown=30)
    """
    with Store(db) as store:
        if algorithm == "graph" and store.db.execute("SELECT 1 FROM tracks LIMIT 1").fetchone():
            params.setdefault("same_person_bound", VIDEO_SAME_PERSON_BOUND)
        clusterer = get_clusterer(algorithm, **params)
        face_ids, media_ids, X = store.embeddings()
        corrections = replay(store)
        kept = np.array([int(f) not in corrections.rejected for f in face_ids], dtype=bool)
        rejected = face_ids[~kept]
        face_ids, media_ids, X = face_ids[kept], media_ids[kept], X[kept]
        must_link = union_groups(_tracks(store, face_ids), corrections.must_link(face_ids))
        points = features(store, face_ids, X) if features and len(X) else X
        labels = clusterer.fit_predict(points, cannot_link=_photo_groups(store, face_ids, media_ids),
                                       must_link=must_link, apart=corrections.apart(face_ids)
                                       ) if len(X) else np.zeros(0, int)
        confidence = membership_confidence(X, labels)
        settings = {**clusterer.get_params(), **(feature_params or {})}
        run_id = store.start_run("cluster", {"algorithm": algorithm, **settings})
        person_of = stable_person_ids(store, face_ids, labels, corrections.confirmed)
        store.save_assignments(np.r_[face_ids, rejected],
                               [person_of.get(l) for l in labels] + [None] * len(rejected),
                               np.r_[confidence, np.zeros(len(rejected))], run_id)
        sizes = np.bincount(labels[labels >= 0]).tolist() if (labels >= 0).any() else []
        report = ClusterReport(algorithm=algorithm, params=settings, faces=len(X),
                               people=len(sizes), unknown=int((labels < 0).sum()),
                               person_sizes=sorted(sizes, reverse=True))
        store.finish_run(run_id, report.__dict__)
    return report


def _photo_groups(store: Store, face_ids: np.ndarray, media_ids: np.ndarray) -> np.ndarray:
    """Cannot-link group per face: its photo, or its video frame (media, time)."""
    info = store.times_and_tracks()
    keys = [(m, info[int(f)][0]) for f, m in zip(face_ids, media_ids)]
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def _tracks(store: Store, face_ids: np.ndarray) -> np.ndarray:
    info = store.times_and_tracks()
    return np.array([-1 if info[int(f)][1] is None else info[int(f)][1] for f in face_ids], dtype=np.int64)


def membership_confidence(X: np.ndarray, labels: np.ndarray, bound: float = 0.6) -> np.ndarray:
    """How surely each face belongs to its person: 1 at the person's centre, 0 at ``bound``."""
    confidence = np.zeros(len(X))
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        distance = np.linalg.norm(X[members] - X[members].mean(axis=0), axis=1)
        confidence[members] = np.clip(1 - distance / bound, 0, 1)
    return confidence


def stable_person_ids(store: Store, face_ids: np.ndarray, labels: np.ndarray,
                      confirmed: dict[int, int] | None = None) -> dict[int, int]:
    """Map cluster labels to people ids. A cluster holding faces a user confirmed is that
    person; otherwise it takes the id (and name) of the previous person sharing the most faces
    with it; new clusters become new people."""
    clusters = np.unique(labels[labels >= 0])
    mapping: dict[int, int] = {}
    votes: dict[int, list[int]] = {}
    for face, label in zip(face_ids, labels):
        if label >= 0 and int(face) in (confirmed or {}):
            votes.setdefault(int(label), []).append(confirmed[int(face)])
    for label, people in votes.items():
        mapping[label] = max(set(people), key=people.count)
    taken = set(mapping.values())
    previous = {face: person for face, (person, _) in store.assignments().items()
                if person is not None and person not in taken}
    free = [c for c in clusters if int(c) not in mapping]
    old_people = sorted(set(previous.values()))
    if free and old_people:
        column = {p: j for j, p in enumerate(old_people)}
        row = {int(c): i for i, c in enumerate(free)}
        overlap = np.zeros((len(free), len(old_people)))
        for face, label in zip(face_ids, labels):
            if int(label) in row and int(face) in previous:
                overlap[row[int(label)], column[previous[int(face)]]] += 1
        for i, j in zip(*linear_sum_assignment(-overlap)):
            if overlap[i, j] > 0:
                mapping[int(free[i])] = old_people[j]
    for label in clusters:
        if int(label) not in mapping:
            mapping[int(label)] = store.new_person()
    return mapping


def run(photos: str | os.PathLike, output: str | os.PathLike, db: str | os.PathLike | None = None,
        options: ScanOptions | None = None, algorithm: str = DEFAULT_ALGORITHM,
        cluster_params: dict | None = None, link: str = "symlink", workers: int | None = None,
        quiet: bool = False, video=None) -> tuple[ScanReport, ClusterReport, Path]:
    """Scan ``photos``, cluster, and export one folder per person into ``output``.

    ``photos`` may also be a video file, a folder of photos and videos, ``webcam:N`` or a
    stream URL; ``video`` (:class:`facecluster.video.VideoOptions`) says how to sample them.
    """
    from facecluster import video as videos
    from facecluster.export import export

    output = Path(output).expanduser()
    db = Path(db) if db else output / DEFAULT_DB_NAME
    if videos.has_video(photos, exclude=[output]):
        scan_report = videos.scan_media(photos, db, options, video, workers=workers,
                                        exclude=[output], quiet=quiet)
        cluster_report = videos.cluster_media(db, algorithm, cluster_params, video)
    else:
        scan_report = scan(photos, db, options, workers=workers, exclude=[output], quiet=quiet)
        cluster_report = cluster(db, algorithm, **(cluster_params or {}))
    summary = export(db, output, link=link, quiet=quiet)
    if video is not None and video.annotate:
        videos.annotate_source(db, photos, video.annotate, summary, scan_report, quiet)
    return scan_report, cluster_report, output
