"""Scan videos and streams into the store: sample -> detect -> align -> embed -> track -> save.

The main process decodes and samples frames (by timestamp) and links faces into tracks; a
pool of worker processes (one per core by default) detects, aligns and embeds the faces of
each sampled frame. Every sampled face is embedded (about 7 ms a face in ONNX Runtime, small
next to the ~50-110 ms a frame the detector takes) because the tracker uses the embeddings
to link faces across samples half a second apart; choosing "good" frames first would save
little. A video is committed in one transaction with its faces, tracks and torso descriptors.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from facecluster.detect import detect_faces, get_detector, working_scale
from facecluster.embed import align_face, get_embedder
from facecluster.media import find_photos
from facecluster.progress import progress_bar
from facecluster.scan import VIDEO_DETECTOR, ScanOptions, encode_jpeg, scan, sharpness
from facecluster.store import FaceRecord, Store
from facecluster.video import appearance
from facecluster.video.options import VideoOptions, VideoScanReport
from facecluster.video.sources import (Source, SourceError, find_videos, frames_with_retries,
                                       is_stream_spec, parse_source, sample_frames)
from facecluster.video.tracking import Tracker

SAMPLES_FOR_POOL = 120  # files with fewer samples are analysed in this process


def has_video(source: str | os.PathLike, exclude: list[Path] | None = None) -> bool:
    """True when ``source`` is a video file, a webcam, a URL, or a folder holding videos."""
    text = str(source)
    if is_stream_spec(text):
        return True
    return bool(find_videos(Path(text).expanduser(), exclude)) if Path(text).expanduser().exists() else False


def scan_media(source: str | os.PathLike, db: str | os.PathLike, options: ScanOptions | None = None,
               video: VideoOptions | None = None, workers: int | None = None,
               exclude: list[Path] | None = None, quiet: bool = False, dask=None) -> VideoScanReport:
    """Scan a video file, webcam, stream, or a folder of photos *and* videos into ``db``.

    ``dask`` finds the faces of a folder's photos on a Dask cluster (:func:`facecluster.scan.scan`);
    videos are analysed here.

    Ctrl-C stops a capture cleanly: what was analysed so far is stored.

    Examples
    --------
    >>> report = scan_media("movie.mp4", "faces.db", video=VideoOptions(fps=2))  # doctest: +SKIP
    >>> report.faces, report.tracks
    (212, 9)
    """
    started = time.perf_counter()
    options, video = options or ScanOptions(), video or VideoOptions()
    text = str(source)
    report = VideoScanReport()
    root = Path(text).expanduser()
    if not is_stream_spec(text) and root.is_dir():
        _scan_photos(root, db, options, workers, exclude, quiet, report, dask)
        sources = [Source(str(p.resolve()), "video") for p in find_videos(root, exclude)]
    else:
        sources = [_parse(text, report)]
    with Store(db) as store:
        fingerprint = video.fingerprint(options)
        rescan_all = store.meta("video_options") not in (None, fingerprint)
        store.db.execute("INSERT OR REPLACE INTO meta VALUES ('video_options', ?)", (fingerprint,))
        run_id = store.start_run("scan-video", {"source": text, **asdict(options), **asdict(video)})
        for item in filter(None, sources):
            if report.stopped:
                break
            if not rescan_all and _unchanged(store, item):
                report.unchanged += 1
                continue
            scan_source(store, item, options, video, run_id, report, workers, quiet)
        report.seconds = time.perf_counter() - started
        store.finish_run(run_id, asdict(report))
    return report


def _parse(text: str, report: VideoScanReport) -> Source | None:
    try:
        return parse_source(text)
    except SourceError as exc:
        report.errors.append((text, str(exc)))
        return None


def _scan_photos(root: Path, db, options, workers, exclude, quiet, report: VideoScanReport, dask=None) -> None:
    """The photos of a mixed folder, by the photo scanner (it marks the videos missing;
    :func:`_unchanged` brings the unchanged ones back)."""
    if not find_photos(root, exclude):
        return
    photos = scan(root, db, options, workers=workers, exclude=exclude, quiet=quiet, dask=dask)
    for name in ("photos", "scanned", "unchanged", "moved", "missing", "faces", "downscaled",
                 "smallest_face", "largest_size", "detect_megapixels"):
        setattr(report, name, getattr(photos, name))
    report.errors += photos.errors


def _unchanged(store: Store, source: Source) -> bool:
    """A video file already in the store with the same size and time: keep it (and make it
    present again if a photo scan of its folder marked it missing)."""
    if source.kind != "video":
        return False
    known = store.media_by_path(source.spec)
    stat = Path(source.spec).stat()
    if not known or known["status"] == "error" or known["size"] != stat.st_size \
            or known["mtime"] != stat.st_mtime:
        return False
    store.db.execute("UPDATE media SET status='ok' WHERE id=?", (known["id"],))
    return True


# -- one source -------------------------------------------------------------------------------
def scan_source(store: Store, source: Source, options: ScanOptions, video: VideoOptions,
                run_id: int, report: VideoScanReport, workers: int | None = None,
                quiet: bool = False) -> int:
    """Analyse one source and store its faces and tracks; returns the media id."""
    period = 1.0 / video.fps
    capture_info: dict = {}
    tracker = Tracker(max_gap=max(1.0, 2.5 * period))
    faces: list[FaceRecord] = []
    looks: list[np.ndarray | None] = []

    def keep(result) -> None:
        moment, found = result
        if not _wanted(len(found), video):
            return
        indices = list(range(len(faces), len(faces) + len(found)))
        tracker.update(moment, [f["box"] for f in found], [f["embedding"] for f in found], indices)
        for face in found:
            looks.append(face.pop("appearance"))
            faces.append(FaceRecord(time=moment, **face))

    error, last_time = None, 0.0
    log = None if quiet else _log
    frames = sample_frames(frames_with_retries(source, on_open=lambda c: capture_info.setdefault("c", c),
                                               log=log), video.fps, video.duration)
    workers = workers or _default_workers(source, video)
    with _Pipeline(options, workers, source.live) as pipeline:
        try:
            # The bar counts seconds up to each sample; the last sample comes before the end,
            # so the bar is completed when the frames run out (and left as it is when stopped).
            with progress_bar(f"Video {_short(source.spec)}", _length(source, video), quiet) as advance:
                for frame in frames:
                    advance(max(0.0, frame.time - last_time))
                    last_time = frame.time
                    for result in pipeline.submit(frame.time, frame.rgb()):
                        keep(result)
        except KeyboardInterrupt:
            report.stopped = "interrupted"
        except SourceError as exc:
            error = str(exc)
        for result in pipeline.drain():
            keep(result)
        report.dropped_samples += pipeline.dropped
    capture = capture_info.get("c")
    length = _media_length(capture, last_time, period, source, video)
    media_id = _save(store, source, capture, faces, looks, tracker, length, period, run_id,
                     error if capture is None else None)
    _count(report, source, faces, tracker, length if capture else 0.0, error)
    return media_id


def _default_workers(source: Source, video: VideoOptions) -> int:
    """All cores, except for a short file: starting the worker processes (~3 s) would cost
    more than they save."""
    seconds = _length(source, video) if source.kind == "video" else None
    return 1 if seconds is not None and seconds * video.fps < SAMPLES_FOR_POOL else os.cpu_count() or 1


def _wanted(count: int, video: VideoOptions) -> bool:
    return (not video.min_people or count >= video.min_people) and \
        (video.max_people is None or count <= video.max_people)


def _count(report: VideoScanReport, source: Source, faces, tracker, length: float, error) -> None:
    report.videos += 1
    report.scanned += 1
    report.faces += len(faces)
    report.tracks += len(tracker.tracks)
    report.video_seconds += length
    if error:
        report.errors.append((source.spec, error))


def _media_length(capture, last_time: float, period: float, source: Source, video: VideoOptions) -> float:
    """Seconds of the source that were analysed."""
    known = capture.duration if capture is not None and not source.live else None
    if known and video.duration:
        known = min(known, video.duration)
    return float(known) if known else last_time + period / 2


def _save(store: Store, source: Source, capture, faces, looks, tracker: Tracker, length: float,
          period: float, run_id: int, error: str | None) -> int:
    path, size, mtime = _identity(source)
    width, height = capture.size if capture is not None else (None, None)
    with store.transaction():
        media_id = store.save_media(path, size=size, mtime=mtime, digest=None, run_id=run_id,
                                    faces=faces, kind="video" if source.kind == "video" else "stream",
                                    width=width, height=height, error=error, duration=length)
        ids = [face.id for face in faces]
        for track in tracker.tracks:
            start, end = max(0.0, track.start - period / 2), min(length, track.end + period / 2)
            track_id = store.db.execute("INSERT INTO tracks (media_id, start, end) VALUES (?,?,?)",
                                        (media_id, start, max(start, end))).lastrowid
            store.db.executemany("UPDATE faces SET track_id=? WHERE id=?",
                                 [(track_id, ids[i]) for i in track.faces])
        store.db.executemany("INSERT INTO appearance VALUES (?, ?)",
                             [(ids[i], look.tobytes()) for i, look in enumerate(looks) if look is not None])
    return media_id


def _identity(source: Source) -> tuple[str, int, float]:
    """(store path, size, mtime): a live capture is a new recording each time."""
    if source.kind == "video":
        stat = Path(source.spec).stat()
        return source.spec, stat.st_size, stat.st_mtime
    return f"{source.spec}@{datetime.now():%Y-%m-%dT%H:%M:%S}", 0, time.time()


def _length(source: Source, video: VideoOptions) -> float | None:
    """Seconds the progress bar counts up to (None: unknown)."""
    if source.kind != "video":
        return video.duration
    try:
        import av

        with av.open(source.spec) as container:
            seconds = container.duration / 1e6 if container.duration else None
    except Exception:  # noqa: BLE001 - only the progress bar needs it
        return None
    return min(seconds, video.duration) if seconds and video.duration else seconds


def _short(spec: str, width: int = 30) -> str:
    name = Path(spec).name if "://" not in spec else spec
    return name if len(name) <= width else "..." + name[-width + 3:]


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


# -- frame analysis (worker side) ---------------------------------------------------------------
_worker: dict = {}


def init_worker(options: ScanOptions, ignore_interrupt: bool = False) -> None:
    """Load the models once per process; pool workers leave Ctrl-C to the main process."""
    if ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    _worker.update(options=options, detector=get_detector(options.detector or VIDEO_DETECTOR),
                   embedder=get_embedder(options.embedder, options.jitter))


def analyse_frame(item: tuple[float, np.ndarray]) -> tuple[float, list[dict]]:
    """Detect, align and embed every face of one RGB frame (plus its torso descriptor)."""
    moment, rgb = item
    options, detector, embedder = _worker["options"], _worker["detector"], _worker["embedder"]
    size = (rgb.shape[1], rgb.shape[0])
    working = working_scale(size, options.megapixels or detector.megapixels)
    detections = detect_faces(detector, rgb, 1.0, working, options.min_face)
    if not detections:
        return moment, []
    aligned = [align_face(rgb, d.box, embedder.chip_size, embedder.chip_padding) for d in detections]
    vectors = embedder.embed(np.stack([chip for _, chip in aligned]))
    return moment, [
        {"box": d.box, "score": d.score, "detector": _worker["detector"].name,
         "landmarks": landmarks.tolist(), "sharpness": sharpness(chip), "chip_jpeg": encode_jpeg(chip),
         "model": embedder.model_id, "embedding": vector, "appearance": appearance.describe(rgb, d.box)}
        for d, (landmarks, chip), vector in zip(detections, aligned, vectors)]


class _Pipeline:
    """Frames in, analysed frames out, in order. With one worker it runs in this process;
    with more, at most ``2 x workers`` frames are in flight: a file waits for the oldest,
    a live source drops the new sample instead (counted in ``dropped``)."""

    def __init__(self, options: ScanOptions, workers: int | None, live: bool):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.live, self.dropped, self.pending = live, 0, deque()
        self.pool = None
        if self.workers == 1:
            init_worker(options)
        else:
            context = multiprocessing.get_context("spawn")  # dlib and ONNX Runtime dislike fork
            self.pool = context.Pool(self.workers, init_worker, (options, True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def submit(self, moment: float, rgb: np.ndarray) -> list:
        if self.pool is None:
            return [analyse_frame((moment, rgb))]
        done = []
        if len(self.pending) >= 2 * self.workers:
            if self.live:
                self.dropped += 1
                return self._ready()
            done.append(self.pending.popleft().get())
        self.pending.append(self.pool.apply_async(analyse_frame, ((moment, rgb),)))
        return done + self._ready()

    def _ready(self) -> list:
        done = []
        while self.pending and self.pending[0].ready():
            done.append(self.pending.popleft().get())
        return done

    def drain(self):
        while self.pending:
            yield self.pending.popleft().get()
