"""Settings of a video run (the ``--fps``, ``--duration``, ``--with-clothing`` ... options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from facecluster.scan import ScanOptions, ScanReport

CLOTHING_WEIGHT = 0.3  # share of the squared distance given to clothing with --with-clothing


@dataclass
class VideoOptions:
    """How videos and streams are sampled and how their faces are clustered.

    Parameters
    ----------
    fps : float
        Frames analysed per second of video, chosen by timestamp.
    duration : float, optional
        Stop after this many seconds of video or stream.
    annotate : str, optional
        Write a copy of the video with boxes and person labels here (single video sources).
    with_clothing : bool
        Cluster on face embedding and torso appearance (see :mod:`.appearance`).
    clothing_weight : float
        Share of the squared distance that clothing gets with ``with_clothing``.
    time_weight : float
        Share of the squared distance given to the difference in time (in units of the
        video's length): faces near in time are pulled together.
    min_people, max_people : int, optional
        Keep only frames with at least / at most this many faces.
    """

    fps: float = 2.0
    duration: float | None = None
    annotate: str | None = None
    with_clothing: bool = False
    clothing_weight: float = CLOTHING_WEIGHT
    time_weight: float = 0.0
    min_people: int | None = None
    max_people: int | None = None

    def __post_init__(self):
        if self.fps <= 0:
            raise ValueError(f"--fps must be positive, not {self.fps}")
        face_share = 1 - self.time_weight - (self.clothing_weight if self.with_clothing else 0)
        if not 0 <= self.time_weight < 1 or not 0 <= self.clothing_weight < 1 or face_share <= 0:
            raise ValueError("clothing and time weights must be in [0, 1) and leave the face "
                             f"a positive share (now {face_share:.2f})")
        if self.min_people and self.max_people and self.min_people > self.max_people:
            raise ValueError(f"--min-people {self.min_people} is above --max-people {self.max_people}")

    def fingerprint(self, scan_options: ScanOptions) -> str:
        """Everything that changes what a video scan stores."""
        sampling = {k: v for k, v in asdict(self).items()
                    if k in ("fps", "duration", "min_people", "max_people")}
        return repr(sorted(sampling.items())) + scan_options.fingerprint()


@dataclass
class VideoScanReport(ScanReport):
    """A scan report with what the videos and streams added."""

    videos: int = 0  # video files and streams read this time
    tracks: int = 0
    video_seconds: float = 0.0  # seconds of video analysed
    dropped_samples: int = 0  # live sources: samples skipped because analysis fell behind
    stopped: str | None = None  # "interrupted" (Ctrl-C) or None
