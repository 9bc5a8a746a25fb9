"""dlib's Chinese Whispers graph clustering: dlib's face_clustering example (a reference)."""

from __future__ import annotations

import dlib
import numpy as np

from facecluster.cluster.base import BaseClusterer


class ChineseWhispersClusterer(BaseClusterer):
    """Link faces closer than ``threshold`` and let labels spread (``dlib.chinese_whispers``).

    Parameters
    ----------
    threshold : float
        Faces closer than this (Euclidean) are linked; 0.5 as in dlib's example.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((3, 2)), np.ones((3, 2)) * 3]
    >>> ChineseWhispersClusterer().fit_predict(X).tolist()
    [0, 0, 0, 1, 1, 1]
    """

    name = "chinese-whispers"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def _cluster(self, X: np.ndarray, forbidden: set) -> np.ndarray:
        squared = (X ** 2).sum(axis=1)
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * X @ X.T, 0))
        rows, cols = np.nonzero(np.triu(distances < self.threshold, 1))
        edges = [(int(a), int(b)) for a, b in zip(rows, cols) if (a, b) not in forbidden]
        edges += [(i, i) for i in range(len(X))]  # every face is a vertex, linked or not
        return np.array(dlib.chinese_whispers(edges)) if len(X) else np.zeros(0, int)
