"""Faces, people and embeddings as Parquet: readable by DuckDB, pandas, Polars and Spark.

``faces.parquet``, one row per face of the last clustering (rejected faces included, marked):

=============  ==========================  ================================================
column         type                        meaning
=============  ==========================  ================================================
face_id        int64                       the id faces.csv and the review page show
photo          string                      the photo's path (bytes that are not UTF-8 as
                                           ``\\xNN``)
photo_bytes    binary                      the exact path, as the file system's bytes
time           float64, null               seconds into a video, frame of an animation
left ... bottom  int32                     the box, in pixels of the photo as displayed
score          float32                     detector confidence
person_id      int64, null                 the person (null: unknown or rejected)
person_name    string, null                the person's name, if named
status         string                      ``person`` | ``unknown`` | ``rejected``
confidence     float32                     how surely the face belongs to its person
model          string                      the embedder that made ``embedding``
embedding      fixed_size_list<float32>    the face embedding (128 for dlib)
=============  ==========================  ================================================

``people.parquet``: ``person_id``, ``name``, ``folder``, ``faces``.

Rows are written in row groups of :data:`ROW_GROUP` faces, so a million faces never sit in
memory as Python objects at once.

>>> write_parquet("faces.db", "tables")                  # doctest: +SKIP
>>> import duckdb; duckdb.sql("SELECT person_name, COUNT(*) FROM 'tables/faces.parquet' GROUP BY 1")
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facecluster.store import Store
from facecluster.store.people import folder_name

ROW_GROUP = 100_000

FACES_QUERY = """
SELECT f.id, m.path, f.time, f.left, f.top, f.right, f.bottom, f.score, a.person_id, p.name,
       CASE WHEN r.face_id IS NOT NULL THEN 'rejected'
            WHEN a.person_id IS NULL THEN 'unknown' ELSE 'person' END,
       COALESCE(a.confidence, 0), f.model, f.embedding
FROM faces f JOIN media m ON m.id = f.media_id
LEFT JOIN assignments a ON a.face_id = f.id LEFT JOIN people p ON p.id = a.person_id
LEFT JOIN rejected r ON r.face_id = f.id
WHERE m.status = 'ok' AND (a.face_id IS NOT NULL OR r.face_id IS NOT NULL)
ORDER BY f.id
"""


def write_parquet(db: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """Write ``faces.parquet`` and ``people.parquet`` into ``folder``; returns their row counts."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        store.db.execute("BEGIN")  # one snapshot, even while a scan writes
        try:
            faces = _write_faces(store, folder / "faces.parquet")
            people = _write_people(store, folder / "people.parquet")
        finally:
            store.db.execute("COMMIT")
    return {"faces": faces, "people": people, "folder": str(folder)}


def _write_faces(store: Store, path: Path) -> int:
    cursor = store.db.execute(FACES_QUERY)
    writer, total = None, 0
    while rows := cursor.fetchmany(ROW_GROUP):
        table = _faces_table(rows)
        writer = writer or pq.ParquetWriter(_partial(path), table.schema)
        writer.write_table(table)
        total += len(rows)
    if writer is None:
        writer = pq.ParquetWriter(_partial(path), _faces_table([]).schema)
    writer.close()
    os.replace(_partial(path), path)
    return total


def _faces_table(rows: list) -> pa.Table:
    columns = list(zip(*rows)) if rows else [[] for _ in range(14)]
    dims = len(rows[0][13]) // 4 if rows else 128
    vectors = np.frombuffer(b"".join(columns[13]), np.float32) if rows else np.zeros(0, np.float32)
    paths = [p if isinstance(p, str) else os.fsdecode(p) for p in columns[1]]
    return pa.table({
        "face_id": pa.array(columns[0], pa.int64()),
        "photo": pa.array([p.encode("utf-8", "backslashreplace").decode() for p in paths], pa.string()),
        "photo_bytes": pa.array([os.fsencode(p) for p in paths], pa.binary()),
        "time": pa.array(columns[2], pa.float64()),
        **{name: pa.array(columns[3 + i], pa.int32()) for i, name in enumerate(("left", "top", "right", "bottom"))},
        "score": pa.array(columns[7], pa.float32()),
        "person_id": pa.array(columns[8], pa.int64()),
        "person_name": pa.array(columns[9], pa.string()),
        "status": pa.array(columns[10], pa.string()),
        "confidence": pa.array(columns[11], pa.float32()),
        "model": pa.array(columns[12], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors, pa.float32()), dims),
    })


def _write_people(store: Store, path: Path) -> int:
    rows = store.db.execute("SELECT p.id, p.name, COUNT(a.face_id) FROM people p JOIN assignments a"
                            " ON a.person_id = p.id GROUP BY p.id ORDER BY p.id").fetchall()
    table = pa.table({"person_id": pa.array([r[0] for r in rows], pa.int64()),
                      "name": pa.array([r[1] for r in rows], pa.string()),
                      "folder": pa.array([folder_name(r[0], r[1]) for r in rows], pa.string()),
                      "faces": pa.array([r[2] for r in rows], pa.int64())})
    pq.write_table(table, _partial(path))
    os.replace(_partial(path), path)
    return len(rows)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")
