"""The SQLite store: media, faces, embeddings, runs, people and the user's corrections.

Each scanned file is committed in one transaction with all its faces, so a run killed at any
moment keeps every finished file and redoes only the one in flight. The schema carries a
version number; :data:`MIGRATIONS` upgrades older files in place.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecluster.boxes import iou

SCHEMA = """
CREATE TABLE media (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'photo',      -- photo | video | stream
    size INTEGER, mtime REAL, hash TEXT,
    width INTEGER, height INTEGER,
    duration REAL,                           -- seconds, for video
    status TEXT NOT NULL,                    -- ok | error | missing
    error TEXT,
    run_id INTEGER REFERENCES runs(id)
);
CREATE INDEX media_hash ON media(hash);

CREATE TABLE tracks (                        -- a face followed through video frames: one person
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    start REAL, end REAL
);

CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    time REAL,                               -- seconds into a video, frame of a multi-frame photo; else NULL
    track_id INTEGER REFERENCES tracks(id) ON DELETE SET NULL,
    left INTEGER, top INTEGER, right INTEGER, bottom INTEGER,
    score REAL,                              -- detector confidence
    detector TEXT,
    landmarks TEXT,                          -- JSON [[x, y], ...] in full-resolution pixels
    sharpness REAL,                          -- variance of the chip's Laplacian
    chip BLOB,                               -- aligned 150 px JPEG
    model TEXT,                              -- embedder model_id
    embedding BLOB                           -- float32 vector
);
CREATE INDEX faces_media ON faces(media_id);

CREATE TABLE appearance (                    -- torso descriptor of a video face (--with-clothing)
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    descriptor BLOB
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT, params TEXT, stats TEXT,
    started REAL, finished REAL
);

CREATE TABLE people (                        -- stable ids: a person keeps id and name across runs
    id INTEGER PRIMARY KEY,
    name TEXT,
    created REAL
);

CREATE TABLE assignments (                   -- the latest clustering: face -> person
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,   -- NULL: unknown
    confidence REAL,
    run_id INTEGER REFERENCES runs(id)
);

CREATE TABLE corrections (                   -- every user correction, in order, never deleted
    id INTEGER PRIMARY KEY,
    created REAL,
    action TEXT NOT NULL,                    -- merge | split | move | reject | name
    payload TEXT NOT NULL                    -- JSON
);

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
"""

# Version 2: the user's corrections as state (confirmed, rejected, not_person, merged_into)
# that every clustering honours, with an undo record per correction (facecluster.store.people).
PEOPLE_SCHEMA = [
    "ALTER TABLE people ADD COLUMN merged_into INTEGER",
    "ALTER TABLE corrections ADD COLUMN undo TEXT",
    "ALTER TABLE corrections ADD COLUMN undone INTEGER NOT NULL DEFAULT 0",
    # No foreign keys to faces: a face re-detected by a rescan keeps its id and its corrections.
    # explicit: the user put this face in this person; 0: confirmed with its settled person.
    "CREATE TABLE confirmed (face_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL,"
    " explicit INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE rejected (face_id INTEGER PRIMARY KEY)",
    "CREATE TABLE not_person (face_id INTEGER, person_id INTEGER, PRIMARY KEY (face_id, person_id))",
    "CREATE TABLE skipped (question TEXT PRIMARY KEY, created REAL)",
    # The person each face was last in: a person comes back under its id after a clustering
    # that left its faces unknown (say, another algorithm tried and abandoned).
    "CREATE TABLE last_person (face_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL)",
    "INSERT INTO last_person SELECT face_id, person_id FROM assignments WHERE person_id IS NOT NULL",
    "CREATE INDEX assignments_person ON assignments(person_id)",
    "CREATE INDEX confirmed_person ON confirmed(person_id)",
    # Version 1 logged moves and rejections only as a log: keep what they said.
    "INSERT OR REPLACE INTO confirmed SELECT j.value, json_extract(c.payload, '$.person'), 1"
    " FROM corrections c, json_each(c.payload, '$.faces') j WHERE c.action='move' ORDER BY c.id",
    "INSERT OR IGNORE INTO rejected SELECT j.value FROM corrections c, json_each(c.payload, '$.faces') j"
    " WHERE c.action='reject'",
    "DELETE FROM confirmed WHERE face_id IN (SELECT face_id FROM rejected)",
]

# Version 3: indexes for a store of millions of faces.
SCALE_SCHEMA = [
    # Everything about a face but its chip, in face id order. A chip (a ~6.5 KB JPEG) is stored
    # in the row before the embedding, so reading embeddings from the table walks every chip's
    # overflow pages: the whole file. This covering index is ~0.7 KB a face (8% of the file)
    # and makes reading every face but its chip (embeddings, boxes, frames) one sequential scan.
    ("CREATE INDEX faces_without_chip ON faces(id, media_id, time, track_id, left, top, right,"
     " bottom, score, sharpness, model, embedding, detector, landmarks)"),
    "CREATE INDEX faces_model ON faces(model)",           # which embedding models are stored
    "CREATE INDEX faces_track ON faces(track_id) WHERE track_id IS NOT NULL",  # ON DELETE SET NULL
    "CREATE INDEX tracks_media ON tracks(media_id)",      # rescans delete a media's tracks
    "CREATE INDEX not_person_person ON not_person(person_id)",
    "CREATE INDEX last_person_person ON last_person(person_id)",
    "CREATE INDEX runs_command ON runs(command, id)",     # the latest clustering
]

SCHEMA_VERSION = 3

# MIGRATIONS[v] upgrades a store at version v to v + 1 (a list of SQL statements).
MIGRATIONS: dict[int, list[str]] = {1: PEOPLE_SCHEMA, 2: SCALE_SCHEMA}


@dataclass
class FaceRecord:
    """One detected face, ready to be stored."""

    box: tuple[int, int, int, int]
    score: float
    detector: str
    landmarks: list
    sharpness: float
    chip_jpeg: bytes
    model: str
    embedding: np.ndarray
    time: float | None = None
    id: int | None = None  # set by Store.save_media


def _same_face(face: FaceRecord, old: dict) -> int | None:
    """The id of the stored face that ``face`` is (same time, IoU >= 0.5), if any."""
    best, best_iou = None, 0.5
    for face_id, (time_, box) in old.items():
        if time_ == face.time and (overlap := iou(face.box, box)) >= best_iou:
            best, best_iou = face_id, overlap
    return best


@dataclass
class FaceTable:
    """Faces as arrays (see :meth:`Store.face_table`): one row per face, in face id order."""

    ids: np.ndarray          # face ids
    media: np.ndarray        # media ids
    no_time: np.ndarray      # True for a photo's face (faces.time is NULL)
    time: np.ndarray         # seconds into a video, frame of a multi-frame photo; -1 for none
    track: np.ndarray        # track id, -1 for none
    boxes: np.ndarray        # (n, 4) left, top, right, bottom
    X: np.ndarray            # (n, d) float32 embeddings

    def subset(self, index) -> FaceTable:
        return FaceTable(*(getattr(self, name)[index] for name in self.__dataclass_fields__))


def _vectors(blobs: list[bytes]) -> np.ndarray:
    """float32 vectors (one row per blob) from their stored bytes, in one copy."""
    data = bytearray().join(blobs)
    return np.frombuffer(data, np.float32).reshape(len(blobs), -1) if blobs else np.zeros((0, 128), np.float32)


class StoreError(RuntimeError):
    """The store cannot be used: damaged, not a facecluster store, newer, or its disk is full.

    The message is one sentence naming the file and saying what to do.
    """


def _store_error(path: Path, exc: BaseException) -> StoreError | None:
    """The :class:`StoreError` that explains ``exc``, or None for an error that is not about
    the file or its disk."""
    text = str(exc)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in text:
        return StoreError(f"disk full while using {path}: free some space and run again; "
                          "everything saved so far is kept")
    if "file is not a database" in text:
        return StoreError(f"{path} is not a facecluster store, or is damaged ({text}); "
                          "move it away and run again to start a new one")
    if "malformed" in text or "corrupt" in text:
        return StoreError(f"{path} is damaged ({text}); move it away and run again to rebuild it")
    if "disk I/O error" in text:
        return StoreError(f"cannot write {path} (disk I/O error): check that its disk works and has "
                          "space, then run again; everything saved so far is kept")
    return None


def stored_path(path: str | os.PathLike) -> str | bytes:
    """How a file name is stored in ``media.path``: as text, or, when the name is not valid
    UTF-8 (Python holds it with surrogate escapes), as its raw bytes, so nothing is lost.
    Bind this, not the name itself, in a query on ``media.path``."""
    path = os.fspath(path)
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _row(cursor: sqlite3.Cursor, values: tuple) -> sqlite3.Row:
    """A :class:`sqlite3.Row` in which a ``path`` stored as bytes is the original str again."""
    if bytes in map(type, values):
        values = tuple(os.fsdecode(v) if type(v) is bytes and column[0] == "path" else v
                       for column, v in zip(cursor.description, values))
    return sqlite3.Row(cursor, values)


class Store:
    """A facecluster SQLite file.

    Examples
    --------
    >>> store = Store("faces.db")  # doctest: +SKIP
    >>> ids, X = store.embeddings()
    """

    def __init__(self, path: str | Path):
        """Open (or create) the store at ``path``.

        Raises
        ------
        StoreError
            When the file is damaged, not a facecluster store, written by a newer version,
            or cannot be opened; the message says what to do.
        """
        self.path = Path(path)
        self.db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.row_factory = _row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except Exception as exc:
            if self.db is not None:
                self.db.close()
            if not isinstance(exc, (sqlite3.Error, OSError)):
                raise
            raise _store_error(self.path, exc) or StoreError(
                f"{self.path} cannot be opened as a facecluster store ({exc})") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        """Close; a damaged file or a full disk met inside ``with`` becomes a StoreError."""
        self.close()
        if isinstance(exc, (sqlite3.DatabaseError, OSError)):
            error = _store_error(self.path, exc)
            if error:
                raise error from exc

    def _migrate(self) -> None:
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            if self._foreign():
                raise StoreError(f"{self.path} is a database of another program, not a facecluster "
                                 "store; choose another file name")
            self.db.executescript(f"BEGIN IMMEDIATE; {SCHEMA}; {'; '.join(PEOPLE_SCHEMA[:-3])};"
                                  f" {'; '.join(SCALE_SCHEMA)};"
                                  f" INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                                  " COMMIT;")
            return
        version = int(self.meta("schema_version"))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer facecluster "
                               f"(schema {version} > {SCHEMA_VERSION}); please upgrade")
        while version < SCHEMA_VERSION:
            with self.transaction():
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                version += 1
                self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))

    def _foreign(self) -> bool:
        """Tables but no meta table, seen in one snapshot (a store being created elsewhere
        at this moment is not foreign): some other program's SQLite file."""
        return bool(self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite%')"
            " AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta')").fetchone()[0])

    def transaction(self):
        return _Transaction(self.db)

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    # -- runs ---------------------------------------------------------------------------
    def start_run(self, command: str, params: dict) -> int:
        cursor = self.db.execute("INSERT INTO runs (command, params, started) VALUES (?, ?, ?)",
                                 (command, json.dumps(params, default=str), time.time()))
        return cursor.lastrowid

    def finish_run(self, run_id: int, stats: dict) -> None:
        self.db.execute("UPDATE runs SET stats=?, finished=? WHERE id=?",
                        (json.dumps(stats, default=str), time.time(), run_id))

    # -- media --------------------------------------------------------------------------
    def media_by_path(self, path: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM media WHERE path=?", (stored_path(path),)).fetchone()

    def media_by_hash(self, digest: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM media WHERE hash=? AND status!='error'", (digest,)).fetchall()

    def relocate_media(self, media_id: int, path: str, size: int, mtime: float) -> None:
        """A known file was moved or renamed: keep its faces and everything attached to them."""
        path = stored_path(path)
        with self.transaction():
            self.db.execute("DELETE FROM media WHERE path=? AND id!=?", (path, media_id))
            self.db.execute("UPDATE media SET path=?, size=?, mtime=?, status='ok' WHERE id=?",
                            (path, size, mtime, media_id))

    def touch_media(self, media_id: int, size: int, mtime: float) -> None:
        self.db.execute("UPDATE media SET size=?, mtime=? WHERE id=?", (size, mtime, media_id))

    def save_media(self, path: str, *, size: int, mtime: float, digest: str | None,
                   run_id: int | None, faces: list[FaceRecord], kind: str = "photo",
                   width: int | None = None, height: int | None = None,
                   error: str | None = None, duration: float | None = None) -> int:
        """Replace everything known about ``path`` with this scan's result, atomically.

        A face found again (same frame time, boxes overlapping by IoU >= 0.5) keeps its id, so
        the user's corrections and the people it is in stay attached to it. Each record's ``id``
        is set to its face id.
        """
        status = "error" if error else "ok"
        path = stored_path(path)
        with self.transaction():
            known = self.db.execute("SELECT id FROM media WHERE path=?", (path,)).fetchone()
            values = (kind, size, mtime, digest, width, height, duration, status, error, run_id)
            if known:
                media_id = known[0]
                self.db.execute("UPDATE media SET kind=?, size=?, mtime=?, hash=?, width=?, height=?,"
                                " duration=?, status=?, error=?, run_id=? WHERE id=?", (*values, media_id))
            else:
                media_id = self.db.execute(
                    "INSERT INTO media (kind, size, mtime, hash, width, height, duration, status, error,"
                    " run_id, path) VALUES (?,?,?,?,?,?,?,?,?,?,?)", (*values, path)).lastrowid
            self._replace_faces(media_id, faces)
        return media_id

    def _replace_faces(self, media_id: int, faces: list[FaceRecord]) -> None:
        old = {r[0]: (r[1], (r[2], r[3], r[4], r[5])) for r in self.db.execute(
            "SELECT id, time, left, top, right, bottom FROM faces WHERE media_id=?", (media_id,))}
        self.db.execute("DELETE FROM appearance WHERE face_id IN (SELECT id FROM faces WHERE media_id=?)",
                        (media_id,))
        self.db.execute("DELETE FROM tracks WHERE media_id=?", (media_id,))
        for face in faces:
            face.id = _same_face(face, old)
            if face.id is not None:
                del old[face.id]
            columns = (face.time, *map(int, face.box), face.score, face.detector, json.dumps(face.landmarks),
                       face.sharpness, face.chip_jpeg, face.model,
                       np.asarray(face.embedding, np.float32).tobytes(), media_id)
            if face.id is None:
                face.id = self.db.execute(
                    "INSERT INTO faces (time, left, top, right, bottom, score, detector, landmarks,"
                    " sharpness, chip, model, embedding, media_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    columns).lastrowid
            else:
                self.db.execute("UPDATE faces SET time=?, left=?, top=?, right=?, bottom=?, score=?,"
                                " detector=?, landmarks=?, sharpness=?, chip=?, model=?, embedding=?,"
                                " media_id=? WHERE id=?", (*columns, face.id))
        gone = [(i,) for i in old]
        self.db.executemany("DELETE FROM faces WHERE id=?", gone)
        for table in ("confirmed", "rejected", "not_person"):  # a later face may reuse the id
            self.db.executemany(f"DELETE FROM {table} WHERE face_id=?", gone)

    def mark_missing(self, present: set[str], under: str) -> int:
        """Media below folder ``under`` that are no longer on disk become 'missing' (their faces
        wait for the file to come back); unreadable photos that are gone are forgotten.
        Returns the number of media marked missing."""
        prefix = under.rstrip(os.sep) + os.sep  # compared in Python: LIKE would read _ and % as wildcards
        rows = self.db.execute("SELECT id, path, status, kind FROM media WHERE status IN ('ok', 'error')")
        gone = [r for r in rows if r["path"].startswith(prefix) and r["path"] not in present]
        missing = [(r["id"],) for r in gone if r["status"] == "ok"]
        with self.transaction():
            self.db.executemany("UPDATE media SET status='missing' WHERE id=?", missing)
            self.db.executemany("DELETE FROM media WHERE id=?",
                                [(r["id"],) for r in gone if r["status"] == "error" and r["kind"] == "photo"])
        return len(missing)

    def errors(self) -> list[tuple[str, str]]:
        return [(r["path"], r["error"]) for r in
                self.db.execute("SELECT path, error FROM media WHERE status='error' ORDER BY path")]

    def without_faces(self) -> list[str]:
        """Paths of the photos and videos that were read and hold no face."""
        return [r[0] for r in self.db.execute(
            "SELECT path FROM media m WHERE status='ok'"
            " AND NOT EXISTS (SELECT 1 FROM faces f WHERE f.media_id = m.id) ORDER BY path")]

    # -- faces --------------------------------------------------------------------------
    def embeddings(self, model: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(face ids, media ids, embeddings) of every face on media that are present, in face id
        order: one sequential read of the covering index (no chip is read)."""
        rows = self._bulk("SELECT id, media_id, embedding FROM faces INDEXED BY faces_without_chip"
                          + (" WHERE model=?" if model else "") + " ORDER BY id", (model,) if model else ())
        if not rows:
            return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 128), np.float32)
        X = _vectors([r[2] for r in rows])
        ids, media = np.array([r[:2] for r in rows], np.int64).T
        del rows
        keep = np.isin(media, self.present_media())
        return (ids, media, X) if keep.all() else (ids[keep], media[keep], X[keep])

    def face_table(self, present: np.ndarray | None = None) -> FaceTable:
        """Every face on media that are present (or on the media ``present``), without its
        chip, as arrays in face id order: one sequential read of the covering index
        ``faces_without_chip`` (a million faces in seconds, where reading the table would walk
        every chip)."""
        rows = self._bulk("SELECT id, media_id, time IS NULL, IFNULL(time, -1.0), IFNULL(track_id, -1),"
                          " left, top, right, bottom, embedding FROM faces INDEXED BY faces_without_chip"
                          " ORDER BY id")
        if not rows:
            return FaceTable(*(np.zeros(0, np.int64),) * 2, np.zeros(0, bool), np.zeros(0),
                             np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros((0, 128), np.float32))
        X = _vectors([r[9] for r in rows])
        ids, media, no_time = np.array([r[:3] for r in rows], np.int64).T
        numbers = np.array([r[3:9] for r in rows], np.float64)
        del rows
        table = FaceTable(ids, media, no_time.astype(bool), numbers[:, 0], numbers[:, 1].astype(np.int64),
                          numbers[:, 2:].astype(np.int64), X)
        keep = np.isin(media, self.present_media() if present is None else present)
        return table if keep.all() else table.subset(keep)

    def present_media(self) -> np.ndarray:
        """Ids of the media whose file is present (status 'ok'), sorted."""
        return np.array([r[0] for r in self._bulk("SELECT id FROM media WHERE status='ok' ORDER BY id")],
                        np.int64)

    def _bulk(self, query: str, args=()) -> list[tuple]:
        """All rows of ``query`` as plain tuples (no per-row conversion: for bulk reads)."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(query, args).fetchall()

    def faces(self, ids=None) -> list[sqlite3.Row]:
        """Face rows joined with their media path (without chip and embedding blobs)."""
        query = ("SELECT f.id, f.media_id, f.time, f.track_id, f.left, f.top, f.right, f.bottom,"
                 " f.score, f.sharpness, f.landmarks, m.path FROM faces f JOIN media m ON m.id=f.media_id"
                 " WHERE m.status='ok'")
        rows = self.db.execute(query + " ORDER BY f.id").fetchall()
        if ids is not None:
            wanted = set(int(i) for i in ids)
            rows = [r for r in rows if r["id"] in wanted]
        return rows

    def times_and_tracks(self) -> dict[int, tuple[float | None, int | None]]:
        """Face id -> (seconds into its video, track id); both None for photos."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT id, time, track_id FROM faces")}

    def chip(self, face_id: int) -> bytes:
        return self.db.execute("SELECT chip FROM faces WHERE id=?", (int(face_id),)).fetchone()[0]

    def counts(self) -> dict:
        one = lambda q: self.db.execute(q).fetchone()[0]  # noqa: E731
        return {
            "photos": one("SELECT COUNT(*) FROM media WHERE status='ok'"),
            "unreadable": one("SELECT COUNT(*) FROM media WHERE status='error'"),
            "missing": one("SELECT COUNT(*) FROM media WHERE status='missing'"),
            "faces": one("SELECT COUNT(*) FROM faces f JOIN media m ON m.id=f.media_id WHERE m.status='ok'"),
        }

    # -- people and assignments -----------------------------------------------------------
    def assignments(self) -> dict[int, tuple[int | None, float]]:
        return {r[0]: (r[1], r[2]) for r in
                self.db.execute("SELECT a.face_id, a.person_id, a.confidence FROM assignments a"
                                " JOIN faces f ON f.id=a.face_id JOIN media m ON m.id=f.media_id"
                                " WHERE m.status='ok'")}

    def new_person(self, name: str | None = None) -> int:
        return self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)",
                               (name, time.time())).lastrowid

    def people(self) -> dict[int, str | None]:
        return {r[0]: r[1] for r in self.db.execute("SELECT id, name FROM people")}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (nestable: inner ones are no-ops)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self):
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.db

    def __exit__(self, exc_type, *exc):
        if not self.outer:
            return
        try:
            if not exc_type:
                self.db.execute("COMMIT")
        finally:  # after an error, or a COMMIT that failed (disk full); SQLite may have rolled back
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
