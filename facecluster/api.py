"""The Python API: a few plain verbs over a store file.

>>> import facecluster
>>> facecluster.scan("~/Pictures", "faces.db")                    # doctest: +SKIP
>>> people = facecluster.cluster("faces.db")                       # doctest: +SKIP
>>> facecluster.export("faces.db", "~/people")                     # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from facecluster.cluster import DEFAULT_ALGORITHM
from facecluster.cluster.collection import ClusterReport, cluster_collection
from facecluster.scan import ScanOptions, ScanReport, scan

DEFAULT_DB_NAME = "faces.db"


def cluster(db: str | os.PathLike, algorithm: str = DEFAULT_ALGORITHM, features=None,
            feature_params: dict | None = None, full: bool = False, **params) -> ClusterReport:
    """Group the stored faces by person and save the result (people keep their ids).

    Faces of one photo are always different people; faces of one video track are always one;
    every correction the user made holds (see :mod:`facecluster.store.people`).

    When the store was clustered before with the same (default) algorithm, parameters and
    embedding model, only the faces added since are placed: they join the people who exist or
    form new ones, and no existing person changes (``report.mode == "incremental"``).
    ``full=True`` clusters every face again.

    Examples
    --------
    >>> cluster("faces.db", "chinese-whispers", threshold=0.5)  # doctest: +SKIP
    ClusterReport(algorithm='chinese-whispers', ..., people=12, unknown=30)
    >>> cluster("faces.db").mode  # after new photos were scanned            # doctest: +SKIP
    'incremental'
    """
    return cluster_collection(db, algorithm, features, feature_params, full=full, **params)


def run(photos: str | os.PathLike, output: str | os.PathLike, db: str | os.PathLike | None = None,
        options: ScanOptions | None = None, algorithm: str = DEFAULT_ALGORITHM,
        cluster_params: dict | None = None, link: str = "symlink", workers: int | None = None,
        quiet: bool = False, video=None, dask=None) -> tuple[ScanReport, ClusterReport, dict]:
    """Scan ``photos``, cluster, and export one folder per person into ``output``; returns the
    scan and cluster reports and the export's summary (its ``report`` is the HTML report's path).

    ``photos`` may also be a video file, a folder of photos and videos, ``webcam:N`` or a
    stream URL; ``video`` (:class:`facecluster.video.VideoOptions`) says how to sample them.
    ``dask`` (a scheduler address or a ``distributed.Client``) finds the photos' faces on the
    workers of a Dask cluster, as :func:`facecluster.scan.scan` does; videos are analysed here.
    """
    from facecluster import video as videos
    from facecluster.export import export

    output = Path(output).expanduser()
    db = Path(db) if db else output / DEFAULT_DB_NAME
    if videos.has_video(photos, exclude=[output]):
        scan_report = videos.scan_media(photos, db, options, video, workers=workers,
                                        exclude=[output], quiet=quiet, dask=dask)
        cluster_report = videos.cluster_media(db, algorithm, cluster_params, video)
    else:
        scan_report = scan(photos, db, options, workers=workers, exclude=[output], quiet=quiet, dask=dask)
        cluster_report = cluster(db, algorithm, **(cluster_params or {}))
    summary = export(db, output, link=link, quiet=quiet)
    if video is not None and video.annotate:
        videos.annotate_source(db, photos, video.annotate, summary, scan_report, quiet)
    return scan_report, cluster_report, summary
