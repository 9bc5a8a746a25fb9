"""Clustering algorithms behind one small protocol (scikit-learn style).

Every clusterer takes its parameters in ``__init__`` and offers ``fit(X, cannot_link=None,
must_link=None)``, ``fit_predict(...)`` and ``labels_`` (-1: unknown).

>>> from facecluster.cluster import get_clusterer
>>> clusterer = get_clusterer("chinese-whispers", threshold=0.5)
"""

from __future__ import annotations

from facecluster.cluster._chinese_whispers import ChineseWhispersClusterer
from facecluster.cluster._dbscan import DbscanClusterer
from facecluster.cluster._graph import GraphClusterer
from facecluster.cluster._hac import HacClusterer
from facecluster.cluster.base import BaseClusterer

ALGORITHMS = {c.name: c for c in (GraphClusterer, ChineseWhispersClusterer, DbscanClusterer, HacClusterer)}
DEFAULT_ALGORITHM = GraphClusterer.name


def get_clusterer(name: str = DEFAULT_ALGORITHM, **params) -> BaseClusterer:
    """The clusterer called ``name`` with ``params`` (unset ones keep their defaults)."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}") from None
    return cls(**{k: v for k, v in params.items() if v is not None})


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "BaseClusterer", "ChineseWhispersClusterer",
           "DbscanClusterer", "GraphClusterer", "HacClusterer", "get_clusterer"]
