"""Link the faces of successive sampled frames into tracks (one person each).

At every sampled frame the open tracks and the new detections are matched by the Hungarian
algorithm on ``cost = embedding distance + box_weight * (1 - IoU)``. A pair may match only if
the face embeddings are close: within ``overlap_distance`` when the boxes overlap, within the
stricter ``jump_distance`` when they do not (a cut, or fast motion between samples 0.5 s
apart). Distances are in the face model's own space (0.6 is dlib's same-person bound). A
track not seen for ``max_gap`` seconds is closed, so a missed detection or two does
not split it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from facecluster.boxes import iou_matrix

RECENT = 5  # a track's appearance is the mean of its last few embeddings
FORBIDDEN = 1e6


@dataclass
class Track:
    """Faces (indices given by the caller) of one person followed through the video."""

    faces: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    box: tuple = (0, 0, 0, 0)
    recent: list[np.ndarray] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        return self.times[-1]

    def add(self, face: int, time: float, box, embedding: np.ndarray) -> None:
        self.faces.append(face)
        self.times.append(time)
        self.box = tuple(box)
        self.recent = (self.recent + [np.asarray(embedding, np.float64)])[-RECENT:]

    def embedding(self) -> np.ndarray:
        return np.mean(self.recent, axis=0)


class Tracker:
    """Hungarian face tracker over sampled frames.

    Examples
    --------
    >>> tracker = Tracker(max_gap=1.0)
    >>> e = np.eye(128)[0]
    >>> tracker.update(0.0, [(0, 0, 10, 10)], [e], [0])
    [0]
    >>> tracker.update(0.5, [(1, 0, 11, 10)], [e], [1])
    [0]
    >>> [t.faces for t in tracker.tracks]
    [[0, 1]]
    """

    def __init__(self, max_gap: float = 1.0, overlap_distance: float = 0.6,
                 jump_distance: float = 0.45, box_weight: float = 0.5):
        self.max_gap = max_gap
        self.overlap_distance = overlap_distance
        self.jump_distance = jump_distance
        self.box_weight = box_weight
        self.tracks: list[Track] = []

    def update(self, time: float, boxes, embeddings, faces) -> list[int]:
        """Add one frame's detections; returns the track index of each."""
        open_ = [i for i, t in enumerate(self.tracks) if time - t.end <= self.max_gap + 1e-6]
        assigned = [-1] * len(boxes)
        if open_ and len(boxes):
            cost = self._cost([self.tracks[i] for i in open_], boxes, embeddings)
            for row, col in zip(*linear_sum_assignment(cost)):
                if cost[row, col] < FORBIDDEN:
                    assigned[col] = open_[row]
        for j, track in enumerate(assigned):
            if track < 0:
                self.tracks.append(Track())
                assigned[j] = track = len(self.tracks) - 1
            self.tracks[track].add(faces[j], time, boxes[j], embeddings[j])
        return assigned

    def _cost(self, tracks: list[Track], boxes, embeddings) -> np.ndarray:
        track_vectors = np.stack([t.embedding() for t in tracks])
        face_vectors = np.stack([np.asarray(e, np.float64) for e in embeddings])
        distance = np.linalg.norm(track_vectors[:, None] - face_vectors[None], axis=2)
        overlap = iou_matrix([t.box for t in tracks], boxes)
        allowed = distance <= np.where(overlap > 0, self.overlap_distance, self.jump_distance)
        cost = distance + self.box_weight * (1 - overlap)
        return np.where(allowed, cost, FORBIDDEN)  # linear_sum_assignment needs finite costs
