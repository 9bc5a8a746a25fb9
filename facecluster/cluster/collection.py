"""Cluster the faces of a store into people, honouring every correction the user made.

The faces reach the clusterer in a stable order (photo path, frame time, box), so identical
scans give identical people whatever order worker processes finished in.

Constraints, for every algorithm:

* faces of one photo (or video frame) are different people; faces of one video track are one;
* confirmed faces of one person are one item (must-link), settled people are pairwise apart,
  a face the user said is not a person never joins that person;
* rejected faces are left out.

A clustering is *incremental* when the store was clustered before by the default algorithm
with the same parameters and embedding model, and faces were added since: the new faces join
the people who exist (:mod:`facecluster.cluster.incremental`) or form new people among
themselves and the unknown faces, and no existing person changes. Otherwise (the first time,
``full=True``, another algorithm, parameters or model) everything is clustered again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix

from facecluster.cluster import DEFAULT_ALGORITHM, get_clusterer, incremental
from facecluster.cluster.base import union_groups
from facecluster.store import Store
from facecluster.store.people import (
    Constraints,
    constraints,
    save_clustering,
    save_increment,
)

# A video track enters the clusterer as the mean of its faces, which averages away per-frame
# noise: two people's track means sit nearer each other than two single faces do (on the
# Hamilton clip Obama's track mean is 0.56-0.59 from Miranda's, under the photo bound 0.6).
VIDEO_SAME_PERSON_BOUND = 0.5


@dataclass
class ClusterReport:
    """What a clustering did.

    ``mode`` is "full" (every face clustered) or "incremental" (only the faces added since the
    last clustering were placed), ``reason`` says why. For an incremental clustering:
    ``new_faces`` were placed, ``joined`` of them joined existing people, ``in_new_people``
    formed ``new_people`` new people (with ``unknown_joined`` faces that were unknown before),
    ``new_unknown`` stayed unknown.
    """

    algorithm: str
    params: dict
    faces: int = 0
    people: int = 0
    unknown: int = 0
    rejected: int = 0
    person_sizes: list[int] = field(default_factory=list)
    mode: str = "full"
    reason: str = ""
    new_faces: int = 0
    joined: int = 0
    new_people: int = 0
    in_new_people: int = 0
    unknown_joined: int = 0
    new_unknown: int = 0


def cluster_collection(db: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM, features=None,
                       feature_params: dict | None = None, full: bool = False, **params) -> ClusterReport:
    """Group the stored faces by person and save the result (people keep their ids).

    Incremental when it can be (see the module docstring), else, or with ``full``, a full
    clustering; both honour every correction.

    ``features(store, face_ids, X)``, when given, returns what to cluster instead of the
    embeddings ``X`` (e.g. faces fused with clothing); ``feature_params`` are recorded with the
    run to say how.
    """
    with Store(db) as store:
        if algorithm == "graph" and store.db.execute("SELECT 1 FROM tracks LIMIT 1").fetchone():
            params.setdefault("same_person_bound", VIDEO_SAME_PERSON_BOUND)
        clusterer = get_clusterer(algorithm, **params)
        settings = {**clusterer.get_params(), **(feature_params or {})}
        record = run_record(store, algorithm, settings)
        wanted = constraints(store)
        face_ids, X, frames, tracks = stable_faces(store, exclude=wanted.rejected)
        person, new = _previous_people(store, face_ids)
        reason = _why_full(store, record, full, features, new, tracks, person)
        if reason is None:
            run_id, counts = _add_new_faces(store, clusterer, record, wanted, face_ids, X, frames, person, new)
            report = _report(store, algorithm, settings, len(X), mode="incremental",
                             reason="faces added since the last clustering" if counts["new_faces"]
                             else "no new faces since the last clustering", **counts)
        else:
            labels = np.zeros(0, int)
            if len(X):
                points = features(store, face_ids, X) if features else X
                labels = clusterer.fit_predict(points, cannot_link=frames,
                                               must_link=union_groups(tracks, _confirmed_groups(face_ids, wanted)),
                                               apart=_apart(face_ids, wanted))
            run_id = store.start_run("cluster", record)
            save_clustering(store, face_ids, labels, membership_confidence(X, labels), run_id, wanted.confirmed)
            report = _report(store, algorithm, settings, len(X), mode="full", reason=reason)
        store.finish_run(run_id, report.__dict__)
    return report


# --- full or incremental -----------------------------------------------------------------------

def run_record(store: Store, algorithm: str, settings: dict) -> dict:
    """What a clustering run records (its ``runs.params``): algorithm, parameters and the
    embedding models of the faces, as it reads back from the store, so that two compare."""
    return json.loads(json.dumps({"algorithm": algorithm, **settings, "models": _models(store)}, default=str))


def _models(store: Store) -> list[str]:
    """The embedding models of the stored faces."""
    return sorted(str(r[0]) for r in store.db.execute(
        "SELECT DISTINCT model FROM faces INDEXED BY faces_model"))


def _previous_people(store: Store, face_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(person id of each face in the store's clustering, -1 for unknown; True for each face
    the clustering has not seen: scanned since, or back from a missing photo)."""
    rows = np.array(store._bulk("SELECT face_id, IFNULL(person_id, -1) FROM assignments"),
                    np.int64).reshape(-1, 2)
    order = np.argsort(rows[:, 0])
    known, people = rows[order, 0], rows[order, 1]
    at = np.minimum(np.searchsorted(known, face_ids), max(len(known) - 1, 0))
    seen = (known[at] == face_ids) if len(known) else np.zeros(len(face_ids), bool)
    return np.where(seen, people[at] if len(known) else -1, -1), ~seen


def _why_full(store: Store, record: dict, full: bool, features, new: np.ndarray,
              tracks: np.ndarray, person: np.ndarray) -> str | None:
    """Why this clustering must be full, or None when the new faces can simply be added."""
    if full:
        return "asked for"
    if features is not None:
        return "clustering on more than the face (clothing, time)"
    row = store.db.execute("SELECT params FROM runs WHERE command='cluster' AND finished IS NOT NULL"
                           " ORDER BY id DESC LIMIT 1").fetchone()
    if row is None or not store.db.execute("SELECT 1 FROM assignments LIMIT 1").fetchone():
        return "first clustering"
    if record["algorithm"] != DEFAULT_ALGORITHM:
        return f"only the default algorithm ({DEFAULT_ALGORITHM}) adds faces incrementally"
    last = json.loads(row[0] or "{}")
    if last.get("algorithm") != record["algorithm"]:
        return f"the algorithm changed (was {last.get('algorithm')})"
    if "models" in last and last["models"] != record["models"]:
        return "the embedding model changed"
    if last != record:
        return "the parameters changed"
    if (tracks[new] >= 0).any():
        return "new video faces (tracks)"
    if new.any() and not incremental.measurable(person[~new]):
        return "too few people to match new faces against"
    return None


def _add_new_faces(store: Store, clusterer, record: dict, wanted: Constraints, face_ids: np.ndarray,
                   X: np.ndarray, frames: np.ndarray, person: np.ndarray, new: np.ndarray) -> tuple[int, dict]:
    """Place the faces the last clustering has not seen; returns the run id and the counts
    for the report."""
    counts = {"new_faces": int(new.sum()), "joined": 0, "new_people": 0, "in_new_people": 0,
              "unknown_joined": 0, "new_unknown": 0}
    if not new.any():
        return store.start_run("cluster", record), counts
    arriving = np.flatnonzero(new)
    confirmed = np.array([wanted.confirmed.get(int(f), -1) for f in face_ids[arriving]], np.int64)
    place = new.copy()
    place[arriving[confirmed >= 0]] = False  # back from a missing photo: the user's person
    index = {int(f): i for i, f in zip(arriving, face_ids[arriving])}
    not_person = [(index[f], p) for f, p in wanted.not_person if f in index]
    inc = incremental.add_faces(X, person, place, frames, clusterer, not_person)
    bound = float(getattr(clusterer, "same_person_bound", 0.6))
    placed = np.flatnonzero(place)
    people = np.full(len(face_ids), -1, np.int64)
    groups = np.full(len(face_ids), -1, np.int64)
    confidence = np.zeros(len(face_ids))
    people[arriving] = confirmed
    confidence[arriving[confirmed >= 0]] = 1.0
    people[placed] = inc.joined
    confidence[placed] = np.where(inc.joined >= 0, np.clip(1 - inc.distance / bound, 0, 1), 0)
    groups[inc.rest] = inc.groups
    confidence[inc.rest] = membership_confidence(X[inc.rest], inc.groups)
    writes = np.union1d(arriving, inc.rest[inc.groups >= 0])
    run_id = store.start_run("cluster", record)
    save_increment(store, face_ids[writes], people[writes], groups[writes], confidence[writes], run_id)
    grouped = groups >= 0
    counts.update(joined=int((people[arriving] >= 0).sum()), new_people=len(np.unique(groups[grouped])),
                  in_new_people=int((grouped & new).sum()), unknown_joined=int((grouped & ~new).sum()))
    counts["new_unknown"] = counts["new_faces"] - counts["joined"] - counts["in_new_people"]
    return run_id, counts


# --- the faces, in a stable order ----------------------------------------------------------------

def stable_faces(store: Store, exclude=()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face ids, embeddings, frame group, track group) of the present faces, in a stable order:
    photo path, time in the video, box. Faces in ``exclude`` are left out.

    One read of the store's covering index and a vectorised sort: a million faces in seconds.
    """
    media = _media_by_path(store)
    table = store.face_table(present=np.sort(media))
    if len(exclude):
        table = table.subset(~np.isin(table.ids, np.fromiter(exclude, np.int64, len(exclude))))
    by_id = np.argsort(media)
    rank = by_id[np.searchsorted(media[by_id], table.media)]  # the photo's place in path order
    left, top, right, bottom = table.boxes.T
    table = table.subset(np.lexsort((bottom, right, top, left, table.time, rank)))  # ties: face id
    if not len(table.ids):
        return table.ids, table.X, np.zeros(0, np.int64), table.track
    keys = np.stack([table.media, table.no_time.astype(np.int64), table.time.view(np.int64)], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    frames = np.argsort(np.argsort(first))[inverse.ravel()]  # numbered in order of appearance
    return table.ids, table.X, frames.astype(np.int64), table.track


def _media_by_path(store: Store) -> np.ndarray:
    """Ids of the present media in the order of their path's bytes. SQLite orders text by its
    UTF-8 bytes, as wanted, but all text before all blobs (names that are not UTF-8), so a
    store with such names is sorted here."""
    if not store.db.execute("SELECT 1 FROM media WHERE status='ok' AND typeof(path)='blob' LIMIT 1").fetchone():
        return np.array([r[0] for r in store._bulk("SELECT id FROM media WHERE status='ok' ORDER BY path")],
                        np.int64)
    rows = store._bulk("SELECT id, path FROM media WHERE status='ok'")
    rows.sort(key=lambda r: os.fsencode(r[1]) if isinstance(r[1], str) else r[1])
    return np.array([r[0] for r in rows], np.int64)


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
    labels = np.asarray(labels)
    confidence = np.zeros(len(X))
    member = np.flatnonzero(labels >= 0)
    if not len(member):
        return confidence
    codes = np.unique(labels[member], return_inverse=True)[1].ravel()
    sums = csr_matrix((np.ones(len(member)), (codes, member)), shape=(codes.max() + 1, len(X))) @ X
    means = np.asarray(sums, np.float64) / np.bincount(codes)[:, None]
    distance = np.linalg.norm(X[member] - means[codes], axis=1)
    confidence[member] = np.clip(1 - distance / bound, 0, 1)
    return confidence


def _report(store: Store, algorithm: str, settings: dict, faces: int, **done) -> ClusterReport:
    sizes = [r[0] for r in store.db.execute(
        "SELECT COUNT(*) FROM assignments WHERE person_id IS NOT NULL GROUP BY person_id"
        " ORDER BY COUNT(*) DESC")]
    unknown = store.db.execute("SELECT COUNT(*) FROM assignments WHERE person_id IS NULL").fetchone()[0]
    rejected = store.db.execute("SELECT COUNT(*) FROM rejected r JOIN faces f ON f.id=r.face_id"
                                " JOIN media m ON m.id=f.media_id WHERE m.status='ok'").fetchone()[0]
    return ClusterReport(algorithm=algorithm, params=settings, faces=faces, people=len(sizes),
                         unknown=unknown, rejected=rejected, person_sizes=sizes, **done)
