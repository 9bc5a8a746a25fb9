"""Write the people folders: photo links, aligned face chips, montages, people.json, faces.csv.

Layout of the output folder::

    person_001/            (or the person's name once they have one)
        photos/            links to (or copies of) every photo the person is in
        faces/             aligned 150 px chips, best first: 0001_face123.jpg
        montage.jpg        up to 5 x 5 of the best faces
    unknown/               faces that belong to nobody else
    people.json  faces.csv  index.html

Folders a previous export made are removed first (listed in ``.facecluster-export.json``), so
re-exporting never leaves stale people behind; nothing else in the folder is touched.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

from facecluster.media import montage
from facecluster.progress import progress_bar
from facecluster.store import Store

MANIFEST = ".facecluster-export.json"
UNKNOWN = "unknown"


def export(db: str | os.PathLike, output: str | os.PathLike, link: str = "symlink",
           montage_grid: int = 5, quiet: bool = False) -> dict:
    """Export the latest clustering in ``db`` to ``output``; returns the people summary.

    ``link`` is how photos appear in person folders: ``symlink``, ``hardlink`` or ``copy``.
    """
    if link not in ("symlink", "hardlink", "copy"):
        raise ValueError(f"link must be symlink, hardlink or copy, not {link!r}")
    output = Path(output).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    _remove_previous_export(output)
    with Store(db) as store:
        groups = _groups(store)
        names = store.people()
        folders = _folder_names(groups, names)
        people, rows = [], []
        with progress_bar("Exporting", sum(len(f) for f in groups.values()), quiet) as advance:
            for person_id, faces in groups.items():
                folder = output / folders[person_id]
                _write_person(store, folder, faces, link, montage_grid, advance)
                rows += [_csv_row(face, folders[person_id]) for face in faces]
                if person_id is not None:
                    people.append({"id": person_id, "name": names.get(person_id),
                                   "folder": folders[person_id], "faces": len(faces),
                                   "photos": len({f["path"] for f in faces})})
        summary = {"people": people, "unknown_faces": len(groups.get(None, [])),
                   "counts": store.counts(), "unreadable": store.errors(),
                   "runs": _latest_runs(store)}
        from facecluster.video.timeline import write_video_outputs

        write_video_outputs(store, output, groups, folders, summary)  # timeline, screen time
    (output / "people.json").write_text(json.dumps(summary, indent=2, default=str))
    _write_csv(output / "faces.csv", rows)
    (output / MANIFEST).write_text(json.dumps(sorted(set(folders.values()))))
    from facecluster.report import write_report

    write_report(output, summary)
    return summary


def _groups(store: Store) -> dict:
    """Person id (None: unknown) -> faces, people ordered by number of faces, faces best first."""
    assigned = store.assignments()
    groups = defaultdict(list)
    for row in store.faces():
        person, confidence = assigned.get(row["id"], (None, 0.0))
        groups[person].append({**dict(row), "confidence": confidence or 0.0})
    for faces in groups.values():
        faces.sort(key=lambda f: (-f["confidence"], -(f["sharpness"] or 0), f["id"]))
    order = sorted((p for p in groups if p is not None), key=lambda p: (-len(groups[p]), p))
    return {p: groups[p] for p in order + ([None] if None in groups else [])}


def _folder_names(groups: dict, names: dict) -> dict:
    folders, used = {}, {UNKNOWN}
    for number, person_id in enumerate((p for p in groups if p is not None), start=1):
        name = _slug(names.get(person_id) or "") or f"person_{number:03d}"
        candidate, suffix = name, 2
        while candidate in used:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        folders[person_id] = candidate
        used.add(candidate)
    folders[None] = UNKNOWN
    return folders


def _slug(name: str) -> str:
    return re.sub(r"[^\w\- ]+", "", name).strip().replace(" ", "_")[:80]


def _remove_previous_export(output: Path) -> None:
    manifest = output / MANIFEST
    if not manifest.exists():
        return
    for name in json.loads(manifest.read_text()):
        target = output / name
        if target.is_dir() and target.parent == output:
            shutil.rmtree(target)


def _write_person(store: Store, folder: Path, faces: list, link: str, grid: int, advance) -> None:
    (folder / "faces").mkdir(parents=True, exist_ok=True)
    (folder / "photos").mkdir(exist_ok=True)
    linked: dict[str, str] = {}
    for rank, face in enumerate(faces, start=1):
        (folder / "faces" / f"{rank:04d}_face{face['id']}.jpg").write_bytes(store.chip(face["id"]))
        if face["path"] not in linked and not is_capture(face["path"]):  # a stream has no file
            linked[face["path"]] = _link_photo(Path(face["path"]), folder / "photos", link)
        advance()
    montage([store.chip(f["id"]) for f in faces[: grid * grid]], grid).save(
        folder / "montage.jpg", quality=88)


def is_capture(path: str) -> bool:
    """True for the store name of a webcam or stream capture (``webcam:0@...``, ``rtsp://...``)."""
    return path.startswith("webcam:") or "://" in path


def _link_photo(source: Path, folder: Path, link: str) -> str:
    target = folder / source.name
    suffix = 2
    while target.exists() or target.is_symlink():
        target = folder / f"{source.stem}_{suffix}{source.suffix}"
        suffix += 1
    if link == "symlink":
        target.symlink_to(source.resolve())
    elif link == "hardlink":
        try:
            os.link(source, target)
        except OSError:  # another file system: a copy is the next best thing
            shutil.copy2(source, target)
    else:
        shutil.copy2(source, target)
    return target.name


def _csv_row(face: dict, folder: str) -> dict:
    return {"face_id": face["id"], "photo": face["path"], "time": face["time"],
            "left": face["left"], "top": face["top"], "right": face["right"],
            "bottom": face["bottom"], "person": folder,
            "confidence": round(float(face["confidence"]), 4)}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["face_id", "photo", "time", "left", "top", "right",
                                               "bottom", "person", "confidence"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["face_id"]))


def _latest_runs(store: Store) -> list[dict]:
    rows = store.db.execute("SELECT command, params, stats, started, finished FROM runs"
                            " WHERE id IN (SELECT MAX(id) FROM runs GROUP BY command)").fetchall()
    return [{"command": r[0], "params": json.loads(r[1] or "{}"), "stats": json.loads(r[2] or "{}"),
             "seconds": round((r[4] or r[3]) - r[3], 2)} for r in rows]
