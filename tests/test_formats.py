"""Parquet tables and XMP sidecars, read back by real readers (pyarrow, DuckDB, ExifTool)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from facecluster import api
from facecluster.cli import main
from facecluster.store import Store
from facecluster.store import people as P


@pytest.fixture(scope="module")
def named_run(sample_folder, tmp_path_factory):
    """The sample photos, clustered, with Obama named and one face rejected."""
    root = tmp_path_factory.mktemp("formats")
    photos = root / "photos"
    shutil.copytree(sample_folder, photos)
    api.run(photos, root / "out", quiet=True)
    db = root / "out" / "faces.db"
    with Store(db) as store:
        obama = P.list_people(store)[0].id
        P.name_person(store, obama, "Barack Obama")
        P.reject_faces(store, P.person_faces(store, obama)[-1:])
    return root, photos, db


def test_parquet_round_trips_with_pyarrow_and_duckdb(named_run, tmp_path):
    _, _, db = named_run
    result = CliRunner().invoke(main, ["export", "--db", str(db), "--parquet", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    faces = pq.read_table(tmp_path / "faces.parquet").to_pylist()
    with Store(db) as store:
        ids, _, X = store.embeddings()
        stored = dict(zip(ids.tolist(), X))
        assigned = store.assignments()
    assert {f["face_id"] for f in faces} == set(stored)
    for face in faces:
        assert np.allclose(face["embedding"], stored[face["face_id"]])
        assert face["status"] == ("rejected" if face["face_id"] not in assigned else
                                  "unknown" if assigned[face["face_id"]][0] is None else "person")
    import duckdb

    with duckdb.connect() as con:
        named = con.execute(f"SELECT COUNT(*) FROM '{tmp_path / 'faces.parquet'}'"
                            " WHERE person_name = 'Barack Obama'").fetchall()[0][0]
        people = con.execute(f"SELECT name, faces FROM '{tmp_path / 'people.parquet'}' ORDER BY faces DESC").fetchall()
    assert named == people[0][1] >= 4 and people[0][0] == "Barack Obama"


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (Debian libimage-exiftool-perl) not installed")
def test_xmp_sidecars_read_back_by_exiftool(named_run, tmp_path):
    root, photos, db = named_run
    mirror = tmp_path / "xmp"
    assert CliRunner().invoke(main, ["export", "--db", str(db), "--xmp", str(mirror), "-q"]).exit_code == 0
    with Store(db) as store:
        obama = P.resolve_person(store, "Barack Obama")
        boxes = {row["path"]: row for row in store.faces(P.person_faces(store, obama))}
        sizes = dict(store.db.execute("SELECT path, width || 'x' || height FROM media"))
    sidecars = sorted(mirror.rglob("*.xmp"))
    assert len(sidecars) == len(boxes)  # one per photo with a named face, none beside the photos
    assert not list(photos.glob("*.xmp"))
    read = json.loads(subprocess.run(["exiftool", "-j", "-struct", "-RegionInfo", "-PersonInImage",
                                      *map(str, sidecars)], capture_output=True, check=True).stdout)
    for info in read:
        photo = str(photos / info["SourceFile"].rsplit("/", 1)[1][: -len(".xmp")])
        box = boxes[photo]
        width, height = map(int, sizes[photo].split("x"))
        (region,) = info["RegionInfo"]["RegionList"]
        assert region["Name"] == "Barack Obama" and region["Type"] == "Face"
        assert region["Area"]["X"] == pytest.approx((box["left"] + box["right"]) / 2 / width, abs=1e-4)
        assert region["Area"]["H"] == pytest.approx((box["bottom"] - box["top"]) / height, abs=1e-4)
        assert info["PersonInImage"] in ("Barack Obama", ["Barack Obama"])


def test_xmp_beside_photos_never_overwrites_another_tools_sidecar(named_run):
    _, photos, db = named_run
    with Store(db) as store:
        obama = P.resolve_person(store, "Barack Obama")
        first = store.faces(P.person_faces(store, obama)[:1])[0]["path"]
    theirs = photos / (first.rsplit("/", 1)[1] + ".xmp")
    theirs.write_text("<x:xmpmeta>darktable's edits</x:xmpmeta>")
    result = CliRunner().invoke(main, ["export", "--db", str(db), "--xmp-beside", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["xmp"]
    assert theirs.read_text() == "<x:xmpmeta>darktable's edits</x:xmpmeta>"
    assert [path for path, _ in report["skipped"]] == [str(theirs)] and report["written"]
    again = json.loads(CliRunner().invoke(main, ["export", "--db", str(db), "--xmp-beside", "--json"]).output)
    assert sorted(again["xmp"]["written"]) == sorted(report["written"])  # ours are refreshed
