"""Score clustering algorithms on labelled faces, side by side with the seed recipes.

``cannot_link`` (optional everywhere) is the photo of each face, as in a real run: faces of one
photo are never one person. It matters only for sets with several scored faces per photo
(labelled boxes on group photos).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.cluster import KMeans

from facecluster.cluster import DEFAULT_ALGORITHM, get_clusterer
from facecluster.evaluate.metrics import clustering_report

# The seed recipes with their own defaults, reproduced for reference.
REFERENCES = [
    ("dbscan", {"eps": 0.5, "min_samples": 5}, "DBSCAN eps 0.5, min_samples 5 (seed)"),
    ("chinese-whispers", {"threshold": 0.5}, "Chinese Whispers 0.5 (seed)"),
    ("hac", {"linkage": "average", "sim": 0.5}, "HAC average, sim 0.5 cut (seed)"),
]
ORACLE = "k-means told the true number of people (oracle)"


def evaluate_algorithm(X, labels, algorithm: str = DEFAULT_ALGORITHM, *, cannot_link=None,
                       **params) -> dict:
    """Cluster ``X`` and score it against ``labels``; adds ``seconds``."""
    started = time.perf_counter()
    predicted = get_clusterer(algorithm, **params).fit_predict(X, cannot_link=cannot_link)
    return {**clustering_report(labels, predicted), "seconds": time.perf_counter() - started}


def oracle_kmeans(X, labels, seed: int = 0) -> np.ndarray:
    """k-means with k = the true number of identities: an upper reference, not a method."""
    k = len(set(np.asarray(labels).tolist()))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X)


def compare(X, labels, algorithm: str = DEFAULT_ALGORITHM, params: dict | None = None,
            cannot_link=None) -> list[dict]:
    """Rows of scores: the chosen algorithm, each seed recipe, and the k-means oracle."""
    rows = [{"method": f"{algorithm} (default)" if not params else f"{algorithm} {params}",
             **evaluate_algorithm(X, labels, algorithm, cannot_link=cannot_link, **(params or {}))}]
    rows += [{"method": title, **evaluate_algorithm(X, labels, name, cannot_link=cannot_link, **p)}
             for name, p, title in REFERENCES]
    started = time.perf_counter()
    rows.append({"method": ORACLE, **clustering_report(labels, oracle_kmeans(X, labels)),
                 "seconds": time.perf_counter() - started})
    return rows


def subset_scores(X, labels, size: int, repeats: int = 10, seed: int = 0,
                  methods: list[tuple[str, dict]] | None = None, cannot_link=None) -> dict[str, float]:
    """Mean BCubed F over ``repeats`` random subsets of ``size`` faces, per method."""
    methods = methods or [(DEFAULT_ALGORITHM, {})] + [(n, p) for n, p, _ in REFERENCES]
    rng = np.random.default_rng(seed)
    picks = [rng.choice(len(X), size, replace=False) for _ in range(repeats)] if len(X) > size else []
    groups = (lambda i: None) if cannot_link is None else (lambda i: np.asarray(cannot_link)[i])
    return {name: float(np.mean([evaluate_algorithm(X[i], labels[i], name, cannot_link=groups(i), **p)["bcubed_f"]
                                 for i in picks]))
            for name, p in methods} if picks else {}


def sweep(X, labels, algorithm: str, parameter: str, values, cannot_link=None) -> list[dict]:
    """Scores of ``algorithm`` as ``parameter`` takes each of ``values``."""
    return [{parameter: float(v), **evaluate_algorithm(X, labels, algorithm, cannot_link=cannot_link,
                                                          **{parameter: v})}
            for v in values]
