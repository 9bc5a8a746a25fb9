"""Who appears when: ``timeline.csv``, ``timeline.png``, screen time, best chips per person.

A track's interval runs from half a sampling period before its first face to half a period
after its last (the best guess of when the face came and went between samples). A person's
screen time is the length of the union of their tracks' intervals, per video, summed.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from facecluster.media import montage
from facecluster.store import Store

BEST_CHIPS = 12  # written to person/best/ and shown in the montage
UNKNOWN = "unknown"


def write_video_outputs(store: Store, output: Path, groups: dict, folders: dict, summary: dict) -> bool:
    """Add the video outputs of an export (no-op without video faces).

    ``groups`` maps person id (None: unknown) to face rows and ``folders`` person id to
    folder name, as in :func:`facecluster.export.export`; ``summary`` (people.json) gains
    ``screen_seconds`` per person and a ``timeline`` list.
    """
    rows = timeline_rows(store, groups, folders)
    if not rows:
        return False
    _write_csv(output / "timeline.csv", rows)
    plot_timeline(rows, output / "timeline.png")
    seconds = screen_seconds(rows)
    for person in summary["people"]:
        person["screen_seconds"] = round(seconds.get(person["folder"], 0.0), 2)
    summary["timeline"] = rows
    summary["timeline_png"] = "timeline.png"
    for person_id, faces in groups.items():
        video_faces = [f for f in faces if f["track_id"] is not None]
        if person_id is not None and video_faces:
            write_best_chips(store, output / folders[person_id], video_faces)
    return True


def timeline_rows(store: Store, groups: dict, folders: dict) -> list[dict]:
    """One row per track: person folder, video, track id, start, end, seconds."""
    person_of_face = {f["id"]: folders[p] for p, faces in groups.items() for f in faces}
    votes: dict[int, Counter] = defaultdict(Counter)
    for faces in groups.values():
        for face in faces:
            if face["track_id"] is not None:
                votes[face["track_id"]][person_of_face[face["id"]]] += 1
    tracks = store.db.execute(
        "SELECT t.id, t.start, t.end, m.path FROM tracks t JOIN media m ON m.id=t.media_id"
        " WHERE m.status='ok' ORDER BY m.path, t.start, t.id").fetchall()
    return [{"person": votes[t["id"]].most_common(1)[0][0], "video": t["path"], "track": t["id"],
             "start": round(t["start"], 3), "end": round(t["end"], 3),
             "seconds": round(t["end"] - t["start"], 3)}
            for t in tracks if votes.get(t["id"])]


def merged_intervals(rows: list[dict]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(person, video) -> sorted, non-overlapping (start, end) intervals."""
    spans = defaultdict(list)
    for row in rows:
        spans[(row["person"], row["video"])].append((row["start"], row["end"]))
    merged = {}
    for key, intervals in spans.items():
        out: list[list[float]] = []
        for start, end in sorted(intervals):
            if out and start <= out[-1][1] + 1e-6:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        merged[key] = [tuple(i) for i in out]
    return merged


def screen_seconds(rows: list[dict]) -> dict[str, float]:
    """Total seconds on screen per person folder (overlapping tracks counted once)."""
    total: dict[str, float] = defaultdict(float)
    for (person, _), intervals in merged_intervals(rows).items():
        total[person] += sum(end - start for start, end in intervals)
    return dict(total)


def plot_timeline(rows: list[dict], path: Path) -> Path:
    """One panel per video, one row per person, a bar wherever they are on screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merged = merged_intervals(rows)
    videos = sorted({row["video"] for row in rows})
    seconds = screen_seconds(rows)
    people = sorted({row["person"] for row in rows}, key=lambda p: (p == UNKNOWN, -seconds[p], p))
    height = sum(0.35 * len(people) + 0.9 for _ in videos)
    figure, axes = plt.subplots(len(videos), 1, figsize=(10, max(2.0, height)), squeeze=False)
    for axis, video in zip(axes[:, 0], videos):
        for row_index, person in enumerate(people):
            spans = [(s, e - s) for s, e in merged.get((person, video), [])]
            colour = "0.7" if person == UNKNOWN else f"C{row_index % 10}"
            axis.broken_barh(spans, (row_index - 0.35, 0.7), color=colour)
        axis.set_yticks(range(len(people)), people)
        axis.invert_yaxis()
        axis.set_title(Path(video).name if "://" not in video else video, fontsize=9, loc="left")
        axis.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def frontalness(landmarks) -> float:
    """1 for a face looking at the camera, towards 0 as it turns (5-point landmarks: the
    nose is as far from one eye as from the other only when the face is frontal)."""
    points = np.asarray(json.loads(landmarks) if isinstance(landmarks, str) else landmarks, float)
    if points.shape != (5, 2):
        return 0.5
    nose, eye_a, eye_b = points[4], points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    a, b = np.linalg.norm(nose - eye_a), np.linalg.norm(nose - eye_b)
    return float(1 - abs(a - b) / max(a + b, 1e-6))


def best_faces(faces: list[dict], count: int = BEST_CHIPS) -> list[dict]:
    """The sharpest, most frontal faces, taking from every track in turn (so the best chips
    are not ten near-copies of one shot)."""
    sharp = np.array([f["sharpness"] or 0.0 for f in faces])
    scale = np.percentile(sharp, 90) if len(sharp) else 1.0
    quality = {f["id"]: min(1.0, (f["sharpness"] or 0) / max(scale, 1e-6)) * frontalness(f["landmarks"])
               for f in faces}
    by_track = defaultdict(list)
    for face in sorted(faces, key=lambda f: -quality[f["id"]]):
        by_track[face["track_id"]].append(face)
    queues = sorted(by_track.values(), key=lambda q: -quality[q[0]["id"]])
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def write_best_chips(store: Store, folder: Path, faces: list[dict], grid: int = 4) -> None:
    """``folder/best/`` with the best chips, and the montage redone from them."""
    best = best_faces(faces)
    target = folder / "best"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    chips = [store.chip(f["id"]) for f in best]
    for rank, (face, data) in enumerate(zip(best, chips), start=1):
        (target / f"{rank:02d}_t{face['time']:.1f}s_face{face['id']}.jpg").write_bytes(data)

    montage(chips[: grid * grid], grid).save(folder / "montage.jpg", quality=88)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["person", "video", "track", "start", "end", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
