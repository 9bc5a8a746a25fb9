"""Write a copy of a video with a box and a person label on every tracked face.

Faces are only analysed on sampled frames; on the frames between, a track's box is
interpolated between its neighbouring samples, and shown for as long as the track's interval
(see :mod:`.timeline`) lasts.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from facecluster.progress import progress_bar
from facecluster.store import Store, stored_path

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40)]
UNKNOWN_COLOUR = (160, 160, 160)


class AnnotatedTrack:
    """Sampled boxes of one track and its label; :meth:`box_at` interpolates."""

    def __init__(self, label: str, colour, start: float, end: float):
        self.label, self.colour, self.start, self.end = label, colour, start, end
        self.times: list[float] = []
        self.boxes: list[tuple] = []

    def box_at(self, moment: float) -> tuple[int, int, int, int] | None:
        if not self.times or not self.start <= moment <= self.end:
            return None
        boxes = np.array(self.boxes, float)
        return tuple(int(round(np.interp(moment, self.times, boxes[:, k]))) for k in range(4))


def annotate_video(db: str | os.PathLike, video: str | os.PathLike, output: str | os.PathLike,
                   labels: dict[int, str], quiet: bool = False) -> Path:
    """Write ``video`` to ``output`` with the tracked faces of ``db`` boxed and labelled.

    Parameters
    ----------
    labels : dict
        Person id -> label (unknown faces are labelled "?").

    Examples
    --------
    >>> annotate_video("cast/faces.db", "movie.mp4", "cast/annotated.mp4", {1: "person_0001"})  # doctest: +SKIP
    """
    import av

    video, output = str(Path(video).resolve()), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tracks = load_tracks(db, video, labels)
    with av.open(video) as source, av.open(str(output), "w") as target:
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        encoder = _encoder(target, stream)
        total = stream.frames or None
        start = None
        with progress_bar("Annotating", total, quiet) as advance:
            for frame in source.decode(stream):
                start = frame.time if start is None else start
                rgb = draw(frame.to_ndarray(format="rgb24"), tracks, (frame.time or 0.0) - start)
                rgb = np.ascontiguousarray(rgb[: encoder.height, : encoder.width])  # H.264 wants even sizes
                for packet in encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    target.mux(packet)
                advance()
        for packet in encoder.encode():
            target.mux(packet)
    return output


def load_tracks(db, video: str, labels: dict[int, str]) -> list[AnnotatedTrack]:
    """The tracks of ``video`` with their sampled boxes and person labels."""
    with Store(db) as store:
        assigned = store.assignments()
        rows = store.db.execute(
            "SELECT f.id, f.time, f.track_id, f.left, f.top, f.right, f.bottom, t.start, t.end"
            " FROM faces f JOIN media m ON m.id=f.media_id JOIN tracks t ON t.id=f.track_id"
            " WHERE m.path=? AND m.status='ok' ORDER BY f.track_id, f.time", (stored_path(video),)).fetchall()
    tracks: dict[int, AnnotatedTrack] = {}
    people = sorted({p for p, _ in assigned.values() if p is not None})
    for row in rows:
        if row["track_id"] not in tracks:
            person = assigned.get(row["id"], (None, 0))[0]
            colour = COLOURS[people.index(person) % len(COLOURS)] if person is not None else UNKNOWN_COLOUR
            tracks[row["track_id"]] = AnnotatedTrack(labels.get(person, "?"), colour, row["start"], row["end"])
        tracks[row["track_id"]].times.append(row["time"])
        tracks[row["track_id"]].boxes.append((row["left"], row["top"], row["right"], row["bottom"]))
    return list(tracks.values())


def draw(rgb: np.ndarray, tracks: list[AnnotatedTrack], moment: float) -> np.ndarray:
    """``rgb`` with a box and label for every track on screen at ``moment``."""
    rgb = np.ascontiguousarray(rgb)
    thickness = max(1, rgb.shape[0] // 360)
    for track in tracks:
        box = track.box_at(moment)
        if box is None:
            continue
        left, top, right, bottom = box
        cv2.rectangle(rgb, (left, top), (right, bottom), track.colour, thickness + 1)
        scale = 0.45 * thickness
        (width, height), _ = cv2.getTextSize(track.label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y = max(height + 4, top)
        cv2.rectangle(rgb, (left, y - height - 4), (left + width + 4, y), track.colour, -1)
        cv2.putText(rgb, track.label, (left + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return rgb


def _encoder(target, stream):
    """An H.264 (else MPEG-4 part 2) stream at the source's size and average rate."""
    import av

    rate = stream.average_rate or 25
    for codec, options in (("libx264", {"preset": "veryfast", "crf": "23"}), ("mpeg4", {"qscale": "3"})):
        try:
            encoder = target.add_stream(codec, rate=rate, options=options)
            break
        except (av.error.FFmpegError, ValueError, KeyError):
            continue
    else:  # pragma: no cover - PyAV's wheels ship both
        raise RuntimeError("no H.264 or MPEG-4 encoder in this PyAV build")
    encoder.width = stream.codec_context.width // 2 * 2
    encoder.height = stream.codec_context.height // 2 * 2
    encoder.pix_fmt = "yuv420p"
    return encoder


def annotation_labels(people: list[dict]) -> dict[int, str]:
    """Person id -> label (name, else folder) from an export summary's ``people``."""
    return {p["id"]: p.get("name") or p["folder"] for p in people}



def annotate_source(db, source, path, summary: dict, report, quiet: bool = False) -> Path | None:
    """Annotate ``source`` into ``path`` after an export; only a single video file can be
    annotated (anything else is noted in ``report.errors`` and skipped)."""
    from facecluster.video.sources import is_stream_spec, is_video_file

    text = str(source)
    if is_stream_spec(text) or not Path(text).is_file() or not is_video_file(text):
        report.errors.append((text, "--annotate needs a single video file as the source; skipped"))
        return None
    return annotate_video(db, text, path, annotation_labels(summary["people"]), quiet)
