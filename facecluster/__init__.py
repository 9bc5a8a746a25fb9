"""facecluster: group the faces in a photo collection by person, offline.

>>> import facecluster
>>> facecluster.run("~/Pictures", "~/people")                      # doctest: +SKIP
"""

from facecluster.api import ClusterReport, cluster, run
from facecluster.cluster import get_clusterer
from facecluster.export import export
from facecluster.scan import ScanOptions, ScanReport, scan

__all__ = ["ClusterReport", "ScanOptions", "ScanReport", "cluster", "export", "get_clusterer",
           "run", "scan"]
