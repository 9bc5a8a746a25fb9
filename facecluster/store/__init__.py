"""The SQLite store: media, faces, embeddings, runs, people and the user's corrections.

Each scanned file is committed in one transaction with all its faces, so a run killed at any
moment keeps every finished file and redoes only the one in flight. The schema carries a
version number; :data:`MIGRATIONS` upgrades older files in place.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    time REAL,                               -- seconds into a video; NULL for photos
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

SCHEMA_VERSION = 1

# MIGRATIONS[v] upgrades a store at version v to v + 1 (a list of SQL statements).
MIGRATIONS: dict[int, list[str]] = {}


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


class Store:
    """A facecluster SQLite file.

    Examples
    --------
    >>> store = Store("faces.db")  # doctest: +SKIP
    >>> ids, X = store.embeddings()
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _migrate(self) -> None:
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            self.db.executescript(f"BEGIN IMMEDIATE; {SCHEMA}; INSERT INTO meta VALUES "
                                  f"('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
            return
        version = int(self.meta("schema_version"))
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer facecluster "
                               f"(schema {version} > {SCHEMA_VERSION}); please upgrade")
        while version < SCHEMA_VERSION:
            with self.transaction():
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                version += 1
                self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))

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
        return self.db.execute("SELECT * FROM media WHERE path=?", (path,)).fetchone()

    def media_by_hash(self, digest: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM media WHERE hash=? AND status!='error'", (digest,)).fetchall()

    def relocate_media(self, media_id: int, path: str, size: int, mtime: float) -> None:
        """A known file was moved or renamed: keep its faces and everything attached to them."""
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
        """Replace everything known about ``path`` with this scan's result, atomically."""
        status = "error" if error else "ok"
        with self.transaction():
            self.db.execute("DELETE FROM media WHERE path=?", (path,))
            media_id = self.db.execute(
                "INSERT INTO media (path, kind, size, mtime, hash, width, height, duration, status,"
                " error, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (path, kind, size, mtime, digest, width, height, duration, status, error, run_id),
            ).lastrowid
            self.db.executemany(
                "INSERT INTO faces (media_id, time, left, top, right, bottom, score, detector,"
                " landmarks, sharpness, chip, model, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(media_id, f.time, *map(int, f.box), f.score, f.detector, json.dumps(f.landmarks),
                  f.sharpness, f.chip_jpeg, f.model, np.asarray(f.embedding, np.float32).tobytes())
                 for f in faces],
            )
        return media_id

    def mark_missing(self, present: set[str], under: str) -> int:
        """Media below folder ``under`` that are no longer on disk become 'missing'."""
        rows = self.db.execute("SELECT id, path FROM media WHERE status='ok' AND path LIKE ?",
                               (under.rstrip("/") + "/%",)).fetchall()
        gone = [(r["id"],) for r in rows if r["path"] not in present]
        with self.transaction():
            self.db.executemany("UPDATE media SET status='missing' WHERE id=?", gone)
        return len(gone)

    def errors(self) -> list[tuple[str, str]]:
        return [(r["path"], r["error"]) for r in
                self.db.execute("SELECT path, error FROM media WHERE status='error' ORDER BY path")]

    # -- faces --------------------------------------------------------------------------
    def embeddings(self, model: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(face ids, media ids, embeddings) of every face on media that are present."""
        query = ("SELECT f.id, f.media_id, f.embedding FROM faces f JOIN media m ON m.id=f.media_id"
                 " WHERE m.status='ok'" + (" AND f.model=?" if model else "") + " ORDER BY f.id")
        rows = self.db.execute(query, (model,) if model else ()).fetchall()
        if not rows:
            return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 128), np.float32)
        ids = np.array([r[0] for r in rows])
        media = np.array([r[1] for r in rows])
        X = np.stack([np.frombuffer(r[2], np.float32) for r in rows])
        return ids, media, X

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
    def save_assignments(self, face_ids, person_ids, confidence, run_id: int | None) -> None:
        """Store a clustering: ``person_ids`` are stable people ids, or None for unknown."""
        with self.transaction():
            self.db.execute("DELETE FROM assignments")
            self.db.executemany(
                "INSERT INTO assignments VALUES (?,?,?,?)",
                [(int(f), None if p is None else int(p), float(c), run_id)
                 for f, p, c in zip(face_ids, person_ids, confidence)])

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

    # -- corrections ----------------------------------------------------------------------
    def add_correction(self, action: str, **payload) -> int:
        return self.db.execute("INSERT INTO corrections (created, action, payload) VALUES (?,?,?)",
                               (time.time(), action, json.dumps(payload))).lastrowid

    def corrections(self) -> list[tuple[str, dict]]:
        return [(r[0], json.loads(r[1])) for r in
                self.db.execute("SELECT action, payload FROM corrections ORDER BY id")]


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
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
