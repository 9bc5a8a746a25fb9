"""Labelled face sets: ``<set>/<identity>/<image>``, one scored face per photo.

Folders starting with ``_`` (group photos) and ``unlabeled/`` are skipped. An optional CSV of
labelled boxes (``image,identity,xmin,ymin,xmax,ymax``) scores the detection that overlaps the
box (IoU >= 0.5); otherwise the largest face of each photo is scored.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecluster.embed.dlib_resnet import cache_dir
from facecluster.evaluate.metrics import match_boxes
from facecluster.media import find_photos
from facecluster.scan import ScanOptions, scan
from facecluster.store import Store


@dataclass
class LabelledFaces:
    """The scored faces of a labelled set and how detection went."""

    X: np.ndarray  # (n, d) embeddings of the scored faces
    labels: np.ndarray  # identity per scored face
    photos: int = 0
    faces_found: int = 0
    no_face: list[str] = field(default_factory=list)
    several_faces: list[tuple[str, str]] = field(default_factory=list)  # (photo, which was scored)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def detection_report(self) -> dict:
        return {"photos": self.photos, "faces_found": self.faces_found,
                "scored_faces": len(self.labels), "identities": len(set(self.labels.tolist())),
                "photos_without_face": len(self.no_face),
                "photos_with_several_faces": len(self.several_faces),
                "unreadable": len(self.unreadable)}


def labelled_photos(root: Path) -> dict[str, str]:
    """Resolved photo path -> identity for ``root/<identity>/**/<image>``."""
    photos = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")) or folder.name == "unlabeled":
            continue
        for photo in find_photos(folder):
            photos[str(photo.resolve())] = folder.name
    return photos


def default_db(root: Path) -> Path:
    """A cache file per dataset, so a second evaluate reuses the embeddings."""
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:10]
    return cache_dir() / "evaluate" / f"{Path(root).name}-{digest}.db"


def load_labelled_faces(root: str | Path, db: str | Path | None = None,
                        options: ScanOptions | None = None, boxes_csv: str | Path | None = None,
                        workers: int | None = None, quiet: bool = False) -> LabelledFaces:
    """Scan (or reuse) a labelled set and pick the scored face(s) of each photo."""
    root = Path(root)
    db = Path(db) if db else default_db(root)
    targets = {path: [(identity, None)] for path, identity in labelled_photos(root).items()}
    if boxes_csv:
        targets.update(_read_boxes(boxes_csv, root))  # labelled boxes replace the folder label
    scan(root, db, options, workers=workers, quiet=quiet)
    with Store(db) as store:
        faces = [f for f in store.faces() if f["path"] in targets]
        ids, _, X = store.embeddings()
        errors = [(p, e) for p, e in store.errors() if p in targets]
    row_of = {int(face_id): i for i, face_id in enumerate(ids)}
    by_photo: dict[str, list] = {}
    for face in faces:
        by_photo.setdefault(face["path"], []).append(face)
    result = LabelledFaces(X=X[:0], labels=np.array([]), photos=len(targets),
                           faces_found=len(faces), unreadable=errors)
    chosen, identities = [], []
    for path, wanted in sorted(targets.items()):
        candidates = by_photo.get(path, [])
        if not candidates:
            result.no_face.append(path)
            continue
        for identity, box in wanted:
            face, how = _scored_face(candidates, box)
            if face is None:
                continue
            if len(candidates) > 1:
                result.several_faces.append((path, how))
            chosen.append(row_of[face["id"]])
            identities.append(identity)
    result.X, result.labels = X[chosen], np.array(identities)
    return result


def _scored_face(candidates: list, box):
    if box is not None:
        detected = [(f["left"], f["top"], f["right"], f["bottom"]) for f in candidates]
        matches = match_boxes([box], detected)
        return (candidates[matches[0][1]], "labelled box") if matches else (None, "no match")
    largest = max(candidates, key=lambda f: (f["right"] - f["left"]) * (f["bottom"] - f["top"]))
    return largest, "largest"


def _read_boxes(path: str | Path, root: Path) -> dict[str, list]:
    """Photo -> [(identity, box), ...] from ``image,identity,xmin,ymin,xmax,ymax`` rows."""
    boxes: dict[str, list] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            photo = Path(row["image"])
            photo = photo if photo.is_absolute() else root / photo
            box = tuple(int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.setdefault(str(photo.resolve()), []).append((row["identity"], box))
    return boxes
