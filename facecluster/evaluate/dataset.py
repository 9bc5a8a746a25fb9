"""Labelled face sets: ``<set>/<identity>/<image>``, one scored face per photo, and labelled boxes.

Folders starting with ``_`` (group photos) and ``unlabeled/`` are skipped: in a photo filed
under an identity folder the largest face is scored with the folder's identity. An optional
CSV of labelled boxes (``image,identity,xmin,ymin,xmax,ymax``; ``photo`` and ``left,top,right,
bottom`` are accepted too) labels faces one by one instead, in any photo of the set: in each of
its photos the labelled boxes are matched one-to-one to the detections (Hungarian assignment on
IoU, pairs with IoU >= :data:`BOX_MIN_IOU`) and every matched box is scored with its identity.
Labelled boxes without a detection lower the detection recall; detections without a labelled
box are counted, not scored.
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

BOX_MIN_IOU = 0.3  # hand-drawn boxes take in more forehead and chin than the detectors' boxes
COLUMNS = {"image": ("image", "photo", "path"), "identity": ("identity",),
           "xmin": ("xmin", "left"), "ymin": ("ymin", "top"), "xmax": ("xmax", "right"),
           "ymax": ("ymax", "bottom")}


class BoxesError(ValueError):
    """A labelled-boxes CSV that cannot be used; the message says which row and why."""


@dataclass(frozen=True)
class LabelledBox:
    """One labelled face: its photo (resolved path), identity and box (left, top, right, bottom)."""

    photo: str
    identity: str
    box: tuple[int, int, int, int]


@dataclass
class BoxScoring:
    """How the labelled boxes went: how many a detection matched (and so were scored)."""

    labelled: int = 0  # labelled boxes
    photos: int = 0  # photos with labelled boxes
    found: int = 0  # labelled boxes a detection matched, each scored
    unlabelled_detections: int = 0  # detections in those photos that match no labelled box
    missed: list[LabelledBox] = field(default_factory=list)  # labelled boxes no detection matched

    @property
    def recall(self) -> float:
        """Detection recall: the share of labelled faces that were found."""
        return self.found / self.labelled if self.labelled else 0.0

    def report(self) -> dict:
        return {"labelled_faces": self.labelled, "photos": self.photos, "found": self.found,
                "recall": self.recall, "scored": self.found, "min_iou": BOX_MIN_IOU,
                "unlabelled_detections": self.unlabelled_detections,
                "missed": [{"photo": b.photo, "identity": b.identity, "box": list(b.box)}
                           for b in self.missed]}


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
    photo_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # photo index per face
    boxes: BoxScoring | None = None  # with a labelled-boxes CSV

    def detection_report(self) -> dict:
        report = {"photos": self.photos, "faces_found": self.faces_found,
                  "scored_faces": len(self.labels), "identities": len(set(self.labels.tolist())),
                  "photos_without_face": len(self.no_face),
                  "photos_with_several_faces": len(self.several_faces),
                  "unreadable": len(self.unreadable)}
        if self.boxes is not None:
            report["boxes"] = self.boxes.report()
        return report

    def cannot_link(self) -> np.ndarray | None:
        """The photo of each scored face, as clustering's cannot-link groups (faces of one photo
        are different people), or None when no photo has more than one scored face."""
        if len(np.unique(self.photo_of)) == len(self.photo_of):
            return None
        return self.photo_of


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
    """Scan (or reuse) a labelled set and pick the scored face(s) of each photo.

    Photos with labelled boxes (``boxes_csv``) score every box a detection matches, whatever
    folder they are in; every other photo in an identity folder scores its largest face.

    Raises
    ------
    BoxesError
        When ``boxes_csv`` has a row that cannot be read or names a photo not in ``root``.
    """
    root = Path(root)
    db = Path(db) if db else default_db(root)
    folder_labels = labelled_photos(root)
    boxes = read_boxes(boxes_csv, root) if boxes_csv else {}
    targets = sorted(set(folder_labels) | set(boxes))
    wanted = set(targets)
    scan(root, db, options, workers=workers, quiet=quiet)
    with Store(db) as store:
        faces = [f for f in store.faces() if f["path"] in wanted]
        ids, _, X = store.embeddings()
        errors = [(p, e) for p, e in store.errors() if p in wanted]
    row_of = {int(face_id): i for i, face_id in enumerate(ids)}
    by_photo: dict[str, list] = {}
    for face in faces:
        by_photo.setdefault(face["path"], []).append(face)
    result = LabelledFaces(X=X[:0], labels=np.array([]), photos=len(targets),
                           faces_found=len(faces), unreadable=errors)
    if boxes:
        result.boxes = BoxScoring(labelled=sum(map(len, boxes.values())), photos=len(boxes))
    chosen, identities, photo_of = [], [], []
    for index, path in enumerate(targets):
        candidates = by_photo.get(path, [])
        if not candidates:
            result.no_face.append(path)
        if path in boxes:
            scored = _score_boxes(boxes[path], candidates, result.boxes)
        elif candidates:
            scored = [(_largest(candidates), folder_labels[path])]
            if len(candidates) > 1:
                result.several_faces.append((path, "largest"))
        else:
            scored = []
        for face, identity in scored:
            chosen.append(row_of[face["id"]])
            identities.append(identity)
            photo_of.append(index)
    result.X, result.labels = X[chosen], np.array(identities)
    result.photo_of = np.array(photo_of, np.int64)
    return result


def _largest(candidates: list):
    return max(candidates, key=lambda f: (f["right"] - f["left"]) * (f["bottom"] - f["top"]))


def _score_boxes(labelled: list[LabelledBox], candidates: list, tally: BoxScoring) -> list:
    """(detected face, identity) of each labelled box matched to a detection of its photo."""
    detected = [(f["left"], f["top"], f["right"], f["bottom"]) for f in candidates]
    pairs = match_boxes([b.box for b in labelled], detected, min_iou=BOX_MIN_IOU)
    matched = {i for i, _ in pairs}
    tally.found += len(pairs)
    tally.unlabelled_detections += len(candidates) - len(pairs)
    tally.missed += [b for i, b in enumerate(labelled) if i not in matched]
    return [(candidates[j], labelled[i].identity) for i, j in pairs]


def read_boxes(path: str | Path, root: Path) -> dict[str, list[LabelledBox]]:
    """Resolved photo path -> its labelled boxes, from a CSV with a header row.

    Columns: ``image`` (or ``photo``; relative to ``root``, or absolute), ``identity``, and the
    box as ``xmin,ymin,xmax,ymax`` (or ``left,top,right,bottom``) in the photo's pixels, as it
    is displayed (after EXIF orientation).

    Raises
    ------
    BoxesError
        A missing column, a row that is not a box, or a photo that is not in ``root``.
    """
    root = Path(root)
    photos = {str(p.resolve()) for p in find_photos(root)}  # what a scan of root reads
    boxes: dict[str, list[LabelledBox]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = _columns(reader.fieldnames or [], path)
        for line, row in enumerate(reader, start=2):
            if not any((v or "").strip() for v in row.values()):
                continue  # a blank line
            try:
                box = tuple(round(float(row[columns[k]])) for k in ("xmin", "ymin", "xmax", "ymax"))
                identity = row[columns["identity"]].strip()
                name = row[columns["image"]].strip()
            except (TypeError, ValueError, OverflowError, AttributeError):
                raise BoxesError(f"{path}, line {line}: give a photo, an identity and four numbers "
                                 f"for the box") from None
            if not identity or not name or box[2] <= box[0] or box[3] <= box[1]:
                raise BoxesError(f"{path}, line {line}: a photo, an identity and a box with "
                                 f"xmin < xmax and ymin < ymax are needed")
            photo = str((root / name).resolve())
            if photo not in photos:
                raise BoxesError(f"{path}, line {line}: {name} is not a photo in {root} "
                                 f"(give photos relative to the dataset folder)")
            width, height = _upright_size(photo)
            if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
                raise BoxesError(f"{path}, line {line}: the box lies outside {name}, which is "
                                 f"{width} x {height} px (upright, as it is shown)")
            boxes.setdefault(photo, []).append(LabelledBox(photo, identity, box))
    return boxes


def _upright_size(photo: str) -> tuple[int, int]:
    """Width and height of a photo as it is shown (its EXIF orientation applied), read from
    its header; (inf, inf) when Pillow cannot read it (the scan reports that photo)."""
    from PIL import Image

    try:
        with Image.open(photo) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - any unreadable photo: the scan says why
        return float("inf"), float("inf")
    return (height, width) if turned else (width, height)


def _columns(header: list[str], path) -> dict[str, str]:
    """Our column -> the CSV's column of that name or an accepted alias."""
    present = {name.strip().lower(): name for name in header if name}
    columns = {}
    for column, aliases in COLUMNS.items():
        found = next((present[a] for a in aliases if a in present), None)
        if found is None:
            raise BoxesError(f"{path} has no {' or '.join(aliases)} column; the header must name "
                             "image,identity,xmin,ymin,xmax,ymax")
        columns[column] = found
    return columns
