"""DBSCAN on Euclidean distances: the face_recognition examples' recipe (a reference)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN

from facecluster.cluster.base import BaseClusterer


class DbscanClusterer(BaseClusterer):
    """scikit-learn's DBSCAN with the seed recipe's defaults.

    Parameters
    ----------
    eps : float
        Neighbourhood radius (Euclidean distance between embeddings).
    min_samples : int
        Faces within ``eps`` (the face included) for a core face.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 3]
    >>> DbscanClusterer(eps=0.5, min_samples=3).fit_predict(X).tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    """

    name = "dbscan"

    def __init__(self, eps: float = 0.5, min_samples: int = 5):
        self.eps = eps
        self.min_samples = min_samples

    def _cluster(self, X: np.ndarray, forbidden: set) -> np.ndarray:
        labels = DBSCAN(eps=self.eps, min_samples=self.min_samples).fit_predict(X)
        noise = labels < 0  # noise faces become their own (singleton) clusters
        labels[noise] = labels.max() + 1 + np.arange(noise.sum())
        return labels
