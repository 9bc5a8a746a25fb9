"""User corrections take effect at once and survive re-clustering and re-runs."""

from __future__ import annotations

import csv

import numpy as np
from click.testing import CliRunner

from facecluster import api
from facecluster.cli import main
from facecluster.cluster import GraphClusterer
from facecluster.corrections import merge_people, move_faces, name_person, reject_faces
from facecluster.scan import encode_jpeg
from facecluster.store import FaceRecord, Store

CHIP = encode_jpeg(np.full((150, 150, 3), 128, np.uint8))


def make_store(path, seed=0):
    """Three synthetic people (8 faces each) in a real store file, one face per photo."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 128))
    centres *= 0.55 / np.linalg.norm(centres, axis=1, keepdims=True)
    with Store(path) as store:
        for person in range(3):
            for k in range(8):
                vector = centres[person] + rng.normal(scale=0.2 / np.sqrt(128), size=128) * np.sqrt(2)
                face = FaceRecord(box=(0, 0, 10, 10), score=1, detector="hog", landmarks=[], sharpness=1,
                                  chip_jpeg=CHIP, model="dlib_resnet_v1", embedding=vector)
                store.save_media(f"/p/{person}_{k}.jpg", size=1, mtime=1, digest=None, run_id=None, faces=[face])
    return path


def person_of(db) -> dict[int, int | None]:
    with Store(db) as store:
        return {f: p for f, (p, _) in store.assignments().items()}


def test_corrections_survive_reclustering(tmp_path):
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    first = person_of(db)
    a, b, c = first[1], first[9], first[17]  # the three people, by one face each
    assert len({a, b, c}) == 3

    name_person(db, a, "Ann")
    merged = merge_people(db, [a, b])  # the user says the first two are one person
    moved = move_faces(db, [17, 18])  # split two faces off the third into a new person
    reject_faces(db, [24])
    assert person_of(db)[9] == merged == a and person_of(db)[17] == moved

    for _ in range(2):  # re-clustering (twice) keeps every correction
        api.cluster(db)
        now = person_of(db)
        assert {now[f] for f in range(1, 17)} == {a}
        assert now[17] == now[18] == moved and now[19] == c
        assert now[24] is None
        with Store(db) as store:
            assert store.people()[a] == "Ann"


def test_people_commands(tmp_path):
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    runner = CliRunner()
    listing = runner.invoke(main, ["people", "--db", str(db)])
    assert listing.exit_code == 0 and listing.output.count("faces") == 4
    ids = [int(line.split()[0]) for line in listing.output.splitlines()[:3]]
    assert runner.invoke(main, ["name", str(ids[0]), "Bob", "--db", str(db)]).exit_code == 0
    assert runner.invoke(main, ["merge", str(ids[0]), str(ids[1]), "--db", str(db)]).exit_code == 0
    bad = runner.invoke(main, ["merge", str(ids[0]), "999", "--db", str(db)])
    assert bad.exit_code != 0 and "no person with id 999" in bad.output
    bad = runner.invoke(main, ["move", "4242", "--db", str(db)])
    assert bad.exit_code != 0 and "no face with id 4242" in bad.output
    out = tmp_path / "people"
    assert runner.invoke(main, ["export", "--db", str(db), "-o", str(out), "-q"]).exit_code == 0
    with open(out / "faces.csv") as f:
        folders = {row["person"] for row in csv.DictReader(f)}
    assert "Bob" in folders and len(folders) == 2


def test_apart_pairs_keep_people_apart():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=0.01, size=(10, 128))  # one tight group...
    labels = GraphClusterer().fit_predict(X, must_link=np.r_[[0] * 5, [1] * 5], apart=[(0, 9)])
    assert labels[0] != labels[9]  # ...that the user said is two people
