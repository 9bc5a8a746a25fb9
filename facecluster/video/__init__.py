"""Faces in videos, webcams and live streams: who appears, when, and for how long.

>>> from facecluster.video import VideoOptions, scan_media, cluster_media
>>> scan_media("movie.mp4", "faces.db", video=VideoOptions(fps=2))     # doctest: +SKIP
>>> cluster_media("faces.db")                                         # doctest: +SKIP

See ``docs/video.md``.
"""

from facecluster.video.annotate import annotate_source, annotate_video
from facecluster.video.clustering import cluster_media
from facecluster.video.options import CLOTHING_WEIGHT, VideoOptions, VideoScanReport
from facecluster.video.scan_video import has_video, scan_media
from facecluster.video.sources import (VIDEO_EXTENSIONS, SourceError, find_videos, is_stream_spec,
                                       parse_duration, parse_source)

__all__ = ["annotate_source", "annotate_video", "cluster_media", "CLOTHING_WEIGHT", "VIDEO_EXTENSIONS", "SourceError", "VideoOptions", "VideoScanReport",
           "find_videos", "has_video", "is_stream_spec", "parse_duration", "parse_source",
           "scan_media"]
