"""Cluster video faces on the face embedding, optionally fused with clothing and time.

Fusion is by concatenation of L2-normalised parts scaled by the square roots of their
weights, so squared distances blend linearly::

    d^2 = (1 - wc - wt) * d_face^2 + wc * d_clothing^2 + wt * d_time^2

``d_time`` is the difference in time in units of the video's length. Tracks (must-link) and
frames (cannot-link) constrain every algorithm as in :mod:`facecluster.cluster.collection`.
"""

from __future__ import annotations

import os

import numpy as np

from facecluster.cluster import DEFAULT_ALGORITHM
from facecluster.cluster.collection import ClusterReport, cluster_collection
from facecluster.store import Store
from facecluster.video.options import VideoOptions

def cluster_media(db: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM,
                  params: dict | None = None, video: VideoOptions | None = None) -> ClusterReport:
    """Cluster the faces of ``db``; with clothing or time weights, on the fused features.

    Examples
    --------
    >>> cluster_media("faces.db", video=VideoOptions(with_clothing=True))  # doctest: +SKIP
    ClusterReport(algorithm='graph', ..., people=4, unknown=0)
    """
    video = video or VideoOptions()
    if not (video.with_clothing or video.time_weight):
        return cluster_collection(db, algorithm, **(params or {}))
    weights = {"clothing_weight": video.clothing_weight if video.with_clothing else 0.0,
               "time_weight": video.time_weight}
    return cluster_collection(db, algorithm, features=lambda store, ids, X: fused_features(store, ids, X, video),
                              feature_params=weights, **(params or {}))


def fused_features(store: Store, face_ids: np.ndarray, X: np.ndarray, video: VideoOptions) -> np.ndarray:
    """Face embeddings joined with clothing and time coordinates (see the module docstring)."""
    clothing = video.clothing_weight if video.with_clothing else 0.0
    parts = [np.sqrt(1 - clothing - video.time_weight) * _unit(X)]
    if clothing:
        parts.append(np.sqrt(clothing) * clothing_descriptors(store, face_ids))
    if video.time_weight:
        parts.append(np.sqrt(video.time_weight) * relative_times(store, face_ids)[:, None])
    # back to the face model's own scale, where the clusterers' absolute bounds were set
    return np.hstack(parts) * float(np.median(np.linalg.norm(X, axis=1)))


def clothing_descriptors(store: Store, face_ids: np.ndarray) -> np.ndarray:
    """Unit torso descriptor per face; a face without one (torso out of frame, or a photo)
    gets its track's mean, else the mean of all, so it is neither near nor far from anyone."""
    from facecluster.video.appearance import DIMENSIONS

    stored = {}
    if store.db.execute("SELECT 1 FROM sqlite_master WHERE name='appearance'").fetchone():
        stored = {r[0]: np.frombuffer(r[1], np.float32) for r in
                  store.db.execute("SELECT face_id, descriptor FROM appearance")}
    D = np.full((len(face_ids), DIMENSIONS), np.nan)
    for i, face in enumerate(face_ids):
        if int(face) in stored:
            D[i] = stored[int(face)]
    track_of = dict(store.db.execute("SELECT id, track_id FROM faces"))
    tracks = np.array([-1 if track_of.get(int(f)) is None else track_of[int(f)] for f in face_ids])
    for track in np.unique(tracks[tracks >= 0]):
        members = tracks == track
        missing = members & np.isnan(D).any(axis=1)
        if missing.any() and (members & ~missing).any():
            D[missing] = _unit(np.nanmean(D[members & ~missing], axis=0)[None])[0]
    missing = np.isnan(D).any(axis=1)
    D[missing] = _unit(np.nanmean(D[~missing], axis=0)[None])[0] if (~missing).any() else 0.0
    return D


def relative_times(store: Store, face_ids: np.ndarray) -> np.ndarray:
    """Each face's time as a fraction of its video's length (photos: the mean, 0.5 if none)."""
    rows = {r[0]: (r[1], r[2]) for r in store.db.execute(
        "SELECT f.id, f.time, m.duration FROM faces f JOIN media m ON m.id=f.media_id")}
    times = np.array([_fraction(*rows.get(int(f), (None, None))) for f in face_ids])
    known = ~np.isnan(times)
    times[~known] = times[known].mean() if known.any() else 0.5
    return times


def _fraction(time: float | None, duration: float | None) -> float:
    if time is None:
        return np.nan
    return time / duration if duration else 0.0


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
