"""Hierarchical agglomerative clustering: imagecluster's recipe (a reference)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from facecluster.cluster.base import BaseClusterer


class HacClusterer(BaseClusterer):
    """Agglomerative clustering cut at a distance.

    Parameters
    ----------
    linkage : {"average", "complete", "single", "ward"}
    threshold : float, optional
        Cut the tree at this Euclidean distance.
    sim : float
        Used when ``threshold`` is None: cut at ``(1 - sim) * max pairwise distance``,
        imagecluster's rule (its default ``sim=0.5``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((3, 2)), np.ones((3, 2)) * 3]
    >>> HacClusterer(threshold=1.0).fit_predict(X).tolist()
    [0, 0, 0, 1, 1, 1]
    """

    name = "hac"

    def __init__(self, linkage: str = "average", threshold: float | None = None, sim: float = 0.5):
        self.linkage = linkage
        self.threshold = threshold
        self.sim = sim

    def _cluster(self, X: np.ndarray, forbidden: set) -> np.ndarray:
        if len(X) < 2:
            return np.zeros(len(X), int)
        distances = pdist(X)
        cut = self.threshold if self.threshold is not None else (1 - self.sim) * distances.max()
        return fcluster(linkage(distances, self.linkage), cut, criterion="distance")
