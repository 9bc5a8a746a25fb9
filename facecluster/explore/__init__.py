"""Explore a store: look-alike search, a 2-D embedding map and a similarity graph.

>>> from facecluster.explore import similar, write_graph, write_map
>>> faces = similar.query_faces("me.jpg", similar.ScanOptions())   # doctest: +SKIP
>>> write_map("faces.db", "map.html", method="tsne")               # doctest: +SKIP
>>> write_graph("faces.db", "graph.html", k=5)                     # doctest: +SKIP

Modules: :mod:`~facecluster.explore.similar` (query, rank, calibrate the threshold),
:mod:`~facecluster.explore.embedding_map`, :mod:`~facecluster.explore.face_graph`, and the
commands ``facecluster similar|find|compare|map|graph`` in :mod:`facecluster.explore.cli`.
"""

from facecluster.explore import similar
from facecluster.explore.embedding_map import write_map
from facecluster.explore.face_graph import write_graph
from facecluster.explore.similar import Threshold, calibrate, equal_error_threshold

__all__ = ["Threshold", "calibrate", "equal_error_threshold", "similar", "write_graph", "write_map"]
