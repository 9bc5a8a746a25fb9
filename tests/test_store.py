"""The store: incremental, resumable scans that never lose or repeat work."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from facecluster import store as store_module
from facecluster.scan import scan
from facecluster.store import FaceRecord, Store


def face(x: float = 0.0) -> FaceRecord:
    return FaceRecord(box=(1, 2, 30, 40), score=1.5, detector="hog", landmarks=[[3, 4]] * 5,
                      sharpness=10.0, chip_jpeg=b"\xff\xd8chip", model="m",
                      embedding=np.full(128, x, np.float32))


def test_save_and_read_back(tmp_path):
    with Store(tmp_path / "f.db") as store:
        run = store.start_run("scan", {"root": "x"})
        store.save_media("/p/a.jpg", size=10, mtime=1.0, digest="h1", run_id=run, faces=[face(0.1), face(0.2)])
        store.save_media("/p/b.jpg", size=5, mtime=2.0, digest=None, run_id=run, faces=[],
                         error="truncated")
        ids, media, X = store.embeddings()
        assert len(ids) == 2 and X.shape == (2, 128) and X[1, 0] == pytest.approx(0.2)
        assert store.errors() == [("/p/b.jpg", "truncated")]
        assert store.counts() == {"photos": 1, "unreadable": 1, "missing": 0, "faces": 2}
        # saving a path again replaces its faces instead of adding to them
        store.save_media("/p/a.jpg", size=11, mtime=3.0, digest="h2", run_id=run, faces=[face(0.3)])
        assert store.counts()["faces"] == 1


def test_a_version_1_store_is_migrated_with_its_corrections(tmp_path, monkeypatch):
    """A store written by the first release (schema 1, corrections as a log) opens, upgraded in
    place: the moves and rejections it logged become the corrections state."""
    import sqlite3

    path = tmp_path / "f.db"
    db = sqlite3.connect(path)
    db.executescript(store_module.SCHEMA + "; INSERT INTO meta VALUES ('schema_version', '1');")
    db.execute("INSERT INTO corrections (created, action, payload) VALUES (0, 'move', '{\"faces\": [4, 5], \"person\": 2}')")
    db.execute("INSERT INTO corrections (created, action, payload) VALUES (0, 'reject', '{\"faces\": [5, 9]}')")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.meta("schema_version") == str(store_module.SCHEMA_VERSION)
        assert dict(store.db.execute("SELECT face_id, person_id FROM confirmed")) == {4: 2}
        assert {r[0] for r in store.db.execute("SELECT face_id FROM rejected")} == {5, 9}
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with pytest.raises(store_module.StoreError, match="newer facecluster"):
        Store(path)


@pytest.fixture
def album(tmp_path, sample_folder):
    """A small real photo tree: the sample photos, some in a sub-folder."""
    root = tmp_path / "album"
    (root / "2020").mkdir(parents=True)
    for i, photo in enumerate(sorted(sample_folder.iterdir())):
        shutil.copy(photo, root / ("2020" if i % 2 else "") / photo.name)
    return root


def test_rescan_reads_only_new_changed_and_moved(tmp_path, album, sample_folder):
    db = tmp_path / "faces.db"
    first = scan(album, db, workers=1, quiet=True)
    assert first.scanned == 7 and first.faces >= 6 and not first.errors
    with Store(db) as store:
        obama_faces = {r["id"] for r in store.faces() if r["path"].endswith("obama.jpg")}

    again = scan(album, db, workers=1, quiet=True)
    assert (again.scanned, again.unchanged) == (0, 7)

    (album / "obama.jpg").rename(album / "2020" / "renamed.jpg")  # moved: recognised by content
    (album / "notes.jpg").write_text("not a photo")  # new and bad: reported, run goes on
    third = scan(album, db, workers=1, quiet=True)
    assert third.moved == 1 and third.scanned == 1
    assert third.errors and third.errors[0][0].endswith("notes.jpg")
    with Store(db) as store:
        moved = {r["id"] for r in store.faces() if r["path"].endswith("renamed.jpg")}
    assert moved == obama_faces  # same face rows: corrections attached to them survive

    (album / "2020" / "renamed.jpg").unlink()
    fourth = scan(album, db, workers=1, quiet=True)
    assert fourth.missing == 1
    with Store(db) as store:
        assert not obama_faces & {r["id"] for r in store.faces()}


def test_killed_scan_loses_nothing_and_repeats_nothing(tmp_path, sample_folder):
    root = tmp_path / "many"
    for copy in range(3):
        (root / f"copy{copy}").mkdir(parents=True)
        for photo in sample_folder.iterdir():
            shutil.copy(photo, root / f"copy{copy}" / photo.name)
    total = 21
    db = tmp_path / "faces.db"
    process = subprocess.Popen([sys.executable, "-m", "facecluster.cli", "scan", str(root), "--db", str(db),
                                "--workers", "1", "--quiet"])
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if _count(db, "SELECT COUNT(*) FROM media") >= 4:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _count(db, "SELECT COUNT(*) FROM media")
    assert 0 < done < total, "the scan should have been killed part-way"

    report = scan(root, db, workers=1, quiet=True)
    assert report.scanned == total - done  # nothing finished is read again
    with Store(db) as store:
        paths = [r[0] for r in store.db.execute("SELECT path FROM media")]
        per_photo = store.db.execute("SELECT m.path, COUNT(f.id) FROM media m LEFT JOIN faces f"
                                     " ON f.media_id = m.id GROUP BY m.id").fetchall()
    assert len(paths) == len(set(paths)) == total
    faces_by_name = {}
    for path, count in per_photo:  # every copy of a photo has the same faces: none lost, none doubled
        faces_by_name.setdefault(path.rsplit("/", 1)[1], set()).add(count)
    assert all(len(counts) == 1 for counts in faces_by_name.values())


def _count(db, query) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0
