"""Video sources: files, webcams and network streams, read as timestamped frames.

A *source* is what the user typed: a video file, ``webcam:N`` or a URL (``rtsp://``,
``http://`` ...). :func:`open_source` turns it into a :class:`Capture`, an iterator of
:class:`Frame` objects whose ``time`` is in seconds from the start of the capture; pixels are
converted to RGB only for the frames that are sampled (:func:`sample_frames`), which is what
keeps decoding cheap at ``--fps 2``.

Files and streams are read with PyAV (FFmpeg), webcams with OpenCV (PyAV's wheels have no
camera input). :func:`frames_with_retries` reopens a live source that drops, with backoff.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mkv .avi .mov .webm".split())
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://",
                  "srt://")
WEBCAM = re.compile(r"^webcam:(\d+)$")
RETRIES = 3  # reconnections of a dropped live source before giving up
BACKOFF = 1.0  # seconds before the first reconnection; doubles each time
READ_TIMEOUT = 10.0  # seconds without data before a network stream counts as dropped


class SourceError(Exception):
    """A source that cannot be opened or read; the message says why."""


@dataclass(frozen=True)
class Source:
    """A parsed source: ``kind`` is ``video`` (a file), ``webcam`` or ``stream``."""

    spec: str
    kind: str

    @property
    def live(self) -> bool:
        """Live sources have no end of their own and drop frames rather than fall behind."""
        return self.kind != "video"


class Frame:
    """One decoded frame: ``time`` in seconds; :meth:`rgb` converts it (once) to RGB."""

    def __init__(self, time: float, convert: Callable[[], np.ndarray]):
        self.time = time
        self._convert = convert

    def rgb(self) -> np.ndarray:
        return self._convert()


def is_stream_spec(text: str) -> bool:
    """True for ``webcam:N`` and URLs: sources that are not paths."""
    return bool(WEBCAM.match(text)) or text.lower().startswith(STREAM_SCHEMES)


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def parse_source(text: str | os.PathLike) -> Source:
    """Classify a source given on the command line.

    Raises
    ------
    SourceError
        For a path that does not exist or is not a video file.

    Examples
    --------
    >>> parse_source("webcam:0")
    Source(spec='webcam:0', kind='webcam')
    >>> parse_source("rtsp://127.0.0.1:8554/cam").kind
    'stream'
    """
    text = str(text)
    if WEBCAM.match(text):
        return Source(text, "webcam")
    if text.lower().startswith(STREAM_SCHEMES):
        return Source(text, "stream")
    path = Path(text).expanduser()
    if not path.is_file():
        raise SourceError(f"no such video file: {text}")
    if not is_video_file(path):
        raise SourceError(f"not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}): {text}")
    return Source(str(path.resolve()), "video")


def find_videos(root: str | os.PathLike, exclude: list[Path] | None = None) -> list[Path]:
    """Every video file below ``root``, sorted; hidden and excluded folders are skipped."""
    root = Path(root)
    if root.is_file():
        return [root] if is_video_file(root) else []
    excluded = {p.resolve() for p in exclude or []}
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                               and (Path(folder) / d).resolve() not in excluded)
        found += [Path(folder) / f for f in files if is_video_file(f) and not f.startswith(".")]
    return sorted(found)


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds in ``90``, ``90s``, ``10m``, ``1h`` or ``1h30m``; None stays None.

    Examples
    --------
    >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration(90)
    (600.0, 5400.0, 90.0)
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        spec = text.strip().lower().replace(" ", "")
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", spec)
        if not spec or not parts or not any(parts.groups()):
            raise ValueError(f"cannot read duration {text!r}: use e.g. 90, 90s, 10m or 1h")
        hours, minutes, secs = (float(g) if g else 0.0 for g in parts.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError(f"duration must be positive, not {text!r}")
    return seconds


# -- opening sources ------------------------------------------------------------------------
class Capture:
    """Iterate over the frames of a source; ``size`` is (width, height), ``duration`` in
    seconds when known. Subclasses implement ``__iter__`` and ``close``."""

    size: tuple[int, int] = (0, 0)
    duration: float | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AvCapture(Capture):
    """A file or network stream decoded by PyAV; times come from the frames' timestamps."""

    def __init__(self, url: str, network: bool = False):
        import av

        options = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
        try:
            self.container = av.open(url, options=options,
                                     timeout=(READ_TIMEOUT, READ_TIMEOUT) if network else None)
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(_describe(exc)) from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError("no video stream in it")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame-threaded decoding: 1080p needs it
        self.size = (self.stream.codec_context.width, self.stream.codec_context.height)
        self.duration = _duration(self.container, self.stream)

    def __iter__(self) -> Iterator[Frame]:
        import av

        rate = float(self.stream.average_rate or 25)
        start = None
        try:
            for index, frame in enumerate(self.container.decode(self.stream)):
                stamp = frame.time if frame.time is not None else index / rate
                start = stamp if start is None else start
                yield Frame(stamp - start, lambda f=frame: f.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            raise SourceError(_describe(exc)) from None

    def close(self) -> None:
        self.container.close()


class CvCapture(Capture):
    """A webcam through OpenCV; times are wall-clock seconds since the first frame."""

    def __init__(self, index: int):
        import cv2

        self.camera = cv2.VideoCapture(index)
        if not self.camera.isOpened():
            raise SourceError(f"cannot open webcam {index} (is it connected and free?)")
        self.size = (int(self.camera.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self.camera.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        start = None
        while True:
            ok, bgr = self.camera.read()
            if not ok:
                raise SourceError("webcam stopped sending frames")
            now = time.monotonic()
            start = now if start is None else start
            yield Frame(now - start, lambda b=bgr: cv2.cvtColor(b, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self.camera.release()


def open_webcam(index: int) -> Capture:
    """Open webcam ``index`` (tests replace this with a file-backed capture)."""
    return CvCapture(index)


def open_stream(url: str) -> Capture:
    return AvCapture(url, network=True)


def open_file(path: str) -> Capture:
    return AvCapture(path)


def open_source(source: Source) -> Capture:
    """A :class:`Capture` for ``source``; raises :class:`SourceError` when it cannot open."""
    if source.kind == "webcam":
        return open_webcam(int(WEBCAM.match(source.spec).group(1)))
    if source.kind == "stream":
        return open_stream(source.spec)
    return open_file(source.spec)


def frames_with_retries(source: Source, on_open: Callable[[Capture], None] | None = None,
                        retries: int | None = None, backoff: float | None = None,
                        log: Callable[[str], None] | None = None) -> Iterator[Frame]:
    """Frames of ``source``; a live source that fails is reopened up to ``retries`` times
    (waiting ``backoff``, 2 x ``backoff``, ...) and its times carry on where they stopped.

    A file is read once. A live source that ends cleanly ends the capture.

    Raises
    ------
    SourceError
        When the source cannot be opened or read (live: after the last retry).
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF if backoff is None else backoff
    failures, offset, last = 0, 0.0, None
    while True:
        try:
            with open_source(source) as capture:
                if on_open:
                    on_open(capture)
                for frame in capture:
                    failures = 0
                    frame.time += offset
                    last = frame.time
                    yield frame
            return
        except SourceError as exc:
            if not source.live or failures >= retries:
                suffix = f" (gave up after {failures} reconnections)" if source.live and failures else ""
                raise SourceError(f"{exc}{suffix}") from None
            failed_at, wait = time.monotonic(), backoff * 2 ** failures
            failures += 1
            if log:
                log(f"{source.spec}: {exc}; reconnecting in {wait:g} s ({failures}/{retries})")
            time.sleep(wait)
            if last is not None:  # a reopened source restarts its clock at 0
                offset = last + time.monotonic() - failed_at


def sample_frames(frames: Iterator[Frame], fps: float, duration: float | None = None) -> Iterator[Frame]:
    """Keep about ``fps`` frames per second of *timestamps* (so variable frame rates are
    sampled evenly): the first frame at or after each multiple of ``1 / fps``.

    Stops before the first frame at or after ``duration`` seconds.
    """
    period = 1.0 / fps
    next_time = 0.0
    for frame in frames:
        if duration is not None and frame.time >= duration:
            return
        if frame.time + 1e-6 >= next_time:
            yield frame
            next_time = (np.floor(frame.time / period + 1e-6) + 1) * period


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return None


def _describe(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if "Invalid data found" in text:
        return "not a video, or a format that cannot be read"
    return text
