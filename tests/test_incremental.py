"""Incremental clustering: new photos join the people who exist, nobody else changes.

Real SQLite stores throughout; real photos and dlib models (five_celebrity) where the faces
matter, synthetic embeddings (as in test_corrections) where only the bookkeeping does.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corrections import CENTRES, add_photos, face_record, make_store, person_of

from facecluster import api
from facecluster import store as store_module
from facecluster.cli import main
from facecluster.cluster import incremental
from facecluster.cluster._graph import centred
from facecluster.cluster.collection import stable_faces
from facecluster.store import Store
from facecluster.store import people as P


def cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def people_faces(db) -> dict[int, set[int]]:
    """Person id -> its face ids."""
    found: dict[int, set[int]] = {}
    for face, person in person_of(db).items():
        if person is not None:
            found.setdefault(person, set()).add(face)
    return found


def add_face(store: Store, path: str, vector, box=(0, 0, 10, 10)) -> int:
    record = face_record(0, np.random.default_rng(0), box)
    record.embedding = np.asarray(vector, np.float32)
    store.save_media(path, size=1, mtime=1, digest=None, run_id=None, faces=[record])
    return record.id


# -- real photos ----------------------------------------------------------------------------------

FIRST, LATER = 7, 3  # photos per person in the first scan, and added later


@pytest.fixture(scope="module")
def celebrities(tmp_path_factory):
    """five_celebrity: four people's first photos scanned and clustered (``first``), then
    later photos of the same four and one photo of the fifth, a stranger (``later``)."""
    root = dataset("five_celebrity")
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    known, stranger = people[:4], people[4]
    base = tmp_path_factory.mktemp("celebrities")
    album, out = base / "album", base / "people"
    identity: dict[str, str] = {}
    later: list[tuple[Path, Path]] = []
    for name in known + [stranger]:
        photos = sorted((root / name).iterdir())
        first, rest = ([], photos[:1]) if name == stranger else (photos[:FIRST], photos[FIRST:FIRST + LATER])
        (album / name).mkdir(parents=True)
        for photo in first:
            shutil.copy(photo, album / name / photo.name)
        later += [(photo, album / name / photo.name) for photo in rest]
        identity.update({f"{name}/{photo.name}": name for photo in first + rest})
    summary = json.loads(cli("run", album, "-o", out, "--json", "--workers", "2"))
    assert summary["cluster"]["mode"] == "full" and summary["cluster"]["reason"] == "first clustering"
    return {"album": album, "out": out, "later": later, "identity": identity, "stranger": stranger}


def largest_faces(db) -> dict[str, int]:
    """Photo (folder/name) -> its largest face."""
    with Store(db) as store:
        rows = store.faces()
    best: dict[str, tuple[int, int]] = {}
    for r in rows:
        area = (r["right"] - r["left"]) * (r["bottom"] - r["top"])
        name = "/".join(Path(r["path"]).parts[-2:])
        if name not in best or area > best[name][0]:
            best[name] = (area, r["id"])
    return {name: face for name, (_, face) in best.items()}


def test_new_photos_of_known_people_join_their_ids_and_a_stranger_stays_unknown(celebrities):
    album, out = celebrities["album"], celebrities["out"]
    db = out / "faces.db"
    before = person_of(db)
    votes: dict[str, list] = {}  # identity -> the people its first photos are in
    for name, face in largest_faces(db).items():
        votes.setdefault(celebrities["identity"][name], []).append(before.get(face))
    owner = {who: max(set(v) - {None}, key=v.count) for who, v in votes.items()}
    assert len(set(owner.values())) == 4, votes  # the first clustering found the four people
    for source, target in celebrities["later"]:
        shutil.copy(source, target)

    text = cli("run", album, "-o", out, "--workers", "2")
    assert "Added" in text and "joined existing people" in text, text
    summary = json.loads(cli("cluster", "--db", db, "--json"))  # nothing new since: unchanged
    assert summary["mode"] == "incremental" and summary["new_faces"] == 0

    after = person_of(db)
    assert {f: p for f, p in after.items() if f in before} == before  # nobody else changed
    largest = largest_faces(db)
    joined = []
    for _, target in celebrities["later"]:
        photo = "/".join(target.parts[-2:])
        who = celebrities["identity"][photo]
        person = after[largest[photo]]
        if who == celebrities["stranger"]:
            assert person is None  # one photo of someone new: nobody to join
        else:
            assert person in (owner[who], None) or person not in set(before.values()), (photo, person, votes)
            joined.append(person == owner[who])
    assert sum(joined) >= len(joined) - 2, joined  # known people's new photos join them


def test_full_reclusters_the_same_store(celebrities, tmp_path):
    db = tmp_path / "faces.db"
    shutil.copy(celebrities["out"] / "faces.db", db)
    report = json.loads(cli("cluster", "--db", db, "--full", "--json"))
    assert report["mode"] == "full" and report["reason"] == "asked for"
    assert "Full clustering (asked for)" in cli("cluster", "--db", db, "--full")


# -- which clustering runs ------------------------------------------------------------------------

def test_full_or_incremental(tmp_path):
    db = make_store(tmp_path / "f.db", photos=24)
    assert api.cluster(db).reason == "first clustering"
    report = api.cluster(db)
    assert (report.mode, report.reason) == ("incremental", "no new faces since the last clustering")
    with Store(db) as store:
        add_photos(store, np.random.default_rng(1), 3, "b")
    report = api.cluster(db)
    assert report.mode == "incremental" and report.new_faces == 4
    assert report.new_faces == report.joined + report.in_new_people + report.new_unknown
    with Store(db) as store:
        add_photos(store, np.random.default_rng(2), 2, "c")
    assert api.cluster(db, seed=3).reason == "the parameters changed"
    assert api.cluster(db, "hac").mode == "full"
    assert api.cluster(db).reason == "the algorithm changed (was hac)"
    assert api.cluster(db, full=True).reason == "asked for"
    with Store(db) as store:
        store.db.execute("UPDATE faces SET model='another' WHERE id=1")
    assert api.cluster(db).reason == "the embedding model changed"


def test_the_cli_says_what_was_added(tmp_path):
    db = make_store(tmp_path / "f.db", photos=24)
    assert "Full clustering (first clustering)" in cli("cluster", "--db", db)
    with Store(db) as store:
        add_photos(store, np.random.default_rng(1), 3, "b")
    text = cli("cluster", "--db", db)
    assert "Added 4 new faces: 4 joined existing people, 0 unknown" in text, text


# -- corrections hold -----------------------------------------------------------------------------

def test_corrections_hold_after_incremental_and_full(tmp_path):
    db = make_store(tmp_path / "f.db", photos=30)
    api.cluster(db)
    with Store(db) as store:
        people = [p.id for p in P.list_people(store)]
        a, b = people[:2]
        a_faces = P.person_faces(store, a)
        split = P.move_faces(store, a_faces[:2], None, name="Split")
        rejected = P.person_faces(store, b)[:1]
        P.reject_faces(store, rejected)
        outsider = P.person_faces(store, b)[1]
        P.not_this_person(store, outsider, b)
    for step, full in enumerate((False, True, False)):
        with Store(db) as store:
            add_photos(store, np.random.default_rng(10 + step), 4, f"new{step}")
        report = api.cluster(db, full=full)
        assert report.mode == ("full" if full else "incremental")
        now = person_of(db)
        assert {now[f] for f in a_faces[:2]} == {split}  # the split stays together
        assert not set(a_faces[:2]) & people_faces(db).get(a, set())  # ... and apart from a
        assert not set(rejected) & set(now)  # rejected: in nothing
        assert now[outsider] != b  # not_person
        with Store(db) as store:
            assert P.get_person(store, split).name == "Split"


def test_a_new_face_never_joins_a_person_it_is_not(tmp_path):
    """A face the user said is not A, whose photo was away during a full clustering, comes
    back as a new face right at A's centre: it still does not join A."""
    db = make_store(tmp_path / "f.db", photos=30)
    api.cluster(db)
    with Store(db) as store:
        a = P.list_people(store)[0].id
        ids, X, _, _ = stable_faces(store)
        centre = X[np.isin(ids, P.person_faces(store, a))].mean(axis=0)
        face = add_face(store, "/p/away.jpg", centre)
    api.cluster(db)
    assert person_of(db)[face] == a  # it does look like A
    with Store(db) as store:
        P.not_this_person(store, face, a)
        store.db.execute("UPDATE media SET status='missing' WHERE path='/p/away.jpg'")  # away...
    api.cluster(db, full=True)
    with Store(db) as store:  # ... and back: a new face to the clustering, still "not A"
        assert add_face(store, "/p/away.jpg", centre) == face
        assert store.db.execute("SELECT 1 FROM not_person WHERE face_id=?", (face,)).fetchone()
    report = api.cluster(db)
    assert report.mode == "incremental" and report.new_faces == 1
    assert person_of(db)[face] != a


def test_an_incremental_save_never_moves_a_face_out_of_a_person(tmp_path):
    db = make_store(tmp_path / "f.db", photos=12)
    api.cluster(db)
    before = person_of(db)
    placed = next(f for f, p in before.items() if p is not None)
    with Store(db) as store:
        people = store.db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
        assert P.save_increment(store, [placed], [-1], [0], [0.5], None) == {}
        assert store.db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == people
    assert person_of(db) == before  # the face stays where it is


def test_matching_respects_not_person_and_the_photo(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([CENTRES[p] + rng.normal(scale=0.02, size=(20, 128)) for p in range(4)])
    labels = np.repeat(np.arange(4), 20)
    frames = np.arange(len(X))
    near_zero = CENTRES[0] + rng.normal(scale=0.02, size=(4, 128))
    X = np.vstack([X, near_zero])
    labels = np.r_[labels, [-1] * 4]
    new = np.r_[np.zeros(80, bool), np.ones(4, bool)]
    frames = np.r_[frames, [500, 500, 3, 501]]  # two new faces share a photo; one is in face 3's
    joined, _, _ = incremental.match_new_faces(X, labels, new, frames, not_person=[(83, 0)])
    assert joined[3] != 0  # said not to be person 0
    assert joined[2] != 0  # person 0 already has a face in that photo
    assert sorted(joined[:2]).count(0) == 1  # one photo, one of them person 0


@pytest.mark.parametrize("k", [1, 2, 5])
def test_nearest_is_exact_and_skips_what_is_forbidden(k, monkeypatch):
    monkeypatch.setattr(incremental, "CHUNK", 7)  # several blocks
    rng = np.random.default_rng(k)
    Q, C = rng.normal(size=(30, 16)), rng.normal(size=(12, 16))
    forbidden = (np.array([0, 0, 9, 29]), np.array([3, 4, 0, 11]))
    index, squared = incremental.nearest(Q, C, k, forbidden)
    D = ((Q[:, None] - C[None]) ** 2).sum(axis=2)
    D[forbidden] = np.inf
    assert np.array_equal(index, np.argsort(D, axis=1, kind="stable")[:, :k])
    assert np.allclose(squared, np.sort(D, axis=1)[:, :k], atol=1e-4)
    stats = incremental.person_stats(Q, np.arange(30) % 4 - (np.arange(30) == 5), 4)
    members = np.arange(30)[np.arange(30) % 4 == 1]
    assert stats[0][1] == len(members) - 1  # face 5 is in person 0 instead
    kept = members[members != 5]
    assert np.allclose(stats[1][1], Q[kept].mean(axis=0), atol=1e-5)
    assert np.isclose(stats[2][1], ((Q[kept] - Q[kept].mean(axis=0)) ** 2).sum(axis=1).mean(), atol=1e-4)


def test_centred_space_is_the_clusterers():
    X = np.random.default_rng(0).normal(size=(50, 128)) + 1
    assert np.allclose(incremental.centre(X, incremental.centring_mean(X)), centred(X), atol=1e-5)


# -- the property: existing people are only ever extended -----------------------------------------

BATCHES = st.lists(st.lists(st.sampled_from([0, 1, 2, 3, "stranger"]), min_size=1, max_size=3),
                   min_size=1, max_size=4)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(BATCHES, min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_incremental_adds_only_extend_existing_people(tmp_path_factory, batches, seed):
    db = make_store(tmp_path_factory.mktemp("prop") / "f.db", photos=18, seed=seed % 7)
    api.cluster(db)
    rng = np.random.default_rng(seed)
    stranger = rng.normal(size=128) * 0.55 / np.sqrt(128) * 1.4
    for k, photos in enumerate(batches):
        before = people_faces(db)
        with Store(db) as store:
            for j, who in enumerate(photos):
                faces = []
                for i, person in enumerate(dict.fromkeys(who)):
                    record = face_record(0 if person == "stranger" else person, rng, (20 * i, 0, 20 * i + 10, 10))
                    if person == "stranger":
                        record.embedding = stranger + rng.normal(scale=0.01, size=128)
                    faces.append(record)
                store.save_media(f"/p/n{k}_{j}.jpg", size=1, mtime=1, digest=None, run_id=None, faces=faces)
        report = api.cluster(db)
        assert report.mode == "incremental"
        after = people_faces(db)
        for person, faces in before.items():
            assert faces <= after.get(person, set())  # nothing left an existing person
        moved = {f for p, faces in after.items() if p in before for f in faces - before[p]}
        old_faces = set().union(*before.values())
        assert not moved & old_faces  # no face changed person


# -- the store at scale -------------------------------------------------------------------------

def test_a_version_2_store_gets_the_indexes(tmp_path):
    path = tmp_path / "f.db"
    db = sqlite3.connect(path)
    db.executescript(store_module.SCHEMA + ";" + ";".join(store_module.PEOPLE_SCHEMA[:-3])
                     + "; INSERT INTO meta VALUES ('schema_version', '2');")
    db.close()
    with Store(path) as store:
        assert store.meta("schema_version") == "3"
        names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"faces_without_chip", "faces_model", "tracks_media", "not_person_person"} <= names


def test_bulk_reads_match_the_table(tmp_path):
    """The covering-index reads give what the table holds, and stable_faces keeps its order:
    path (bytes order, names that are not UTF-8 too), frame time, box; missing photos left out."""
    rng = np.random.default_rng(0)
    with Store(tmp_path / "f.db") as store:
        for k, path in enumerate(["/p/b.jpg", "/p/a.jpg", "/p/\udce9.jpg", "/p/A.jpg", "/p/gone.jpg"]):
            faces = [face_record(k % 4, rng, (20 * i, 0, 20 * i + 10, 10)) for i in range(2)]
            faces += [face_record(1, rng, (5, 0, 15, 10))]
            for i, face in enumerate(faces):
                face.time = None if k % 2 else float(2 - i % 2)
            store.save_media(path, size=1, mtime=1, digest=None, run_id=None, faces=faces)
        store.mark_missing({"/p/b.jpg", "/p/a.jpg", "/p/\udce9.jpg", "/p/A.jpg"}, "/p")
        ids, _, X = store.embeddings()
        rows = store.db.execute("SELECT f.id, f.embedding FROM faces f JOIN media m ON m.id=f.media_id"
                                " WHERE m.status='ok' ORDER BY f.id").fetchall()
        assert ids.tolist() == [r[0] for r in rows]
        assert np.array_equal(X, np.stack([np.frombuffer(r[1], np.float32) for r in rows]))
        face_ids, _, frames, tracks = stable_faces(store)
        info = {r["id"]: r for r in store.faces()}

    def key(face):
        row = info[int(face)]
        path = row["path"].encode("utf-8", "surrogateescape")
        return (path, -1.0 if row["time"] is None else row["time"], row["left"], row["top"], row["right"], row["bottom"])

    assert face_ids.tolist() == sorted(ids.tolist(), key=key)
    frame_keys = [(info[int(f)]["media_id"], info[int(f)]["time"]) for f in face_ids]
    first = {}
    assert frames.tolist() == [first.setdefault(k, len(first)) for k in frame_keys]
    assert (tracks == -1).all()


def test_the_review_and_export_queries_use_indexes(tmp_path):
    db = make_store(tmp_path / "f.db", photos=6)
    api.cluster(db)
    with Store(db) as store:
        plan = lambda query, *args: " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + query, args))
        assert "faces_without_chip" in plan("SELECT id, media_id, embedding FROM faces"
                                            " INDEXED BY faces_without_chip ORDER BY id")
        assert "assignments_person" in plan("SELECT face_id FROM assignments WHERE person_id=?", 1)
        assert "not_person_person" in plan("SELECT face_id FROM not_person WHERE person_id=?", 1)
        assert "tracks_media" in plan("SELECT id FROM tracks WHERE media_id=?", 1)
        assert "faces_track" in plan("SELECT id FROM faces WHERE track_id=?", 1)


def test_the_benchmark_generator_has_dlibs_geometry():
    """The benchmark's generator gives dlib's geometry (within ~0.47, between ~0.8)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench", Path(__file__).resolve().parents[1] / "benchmarks" / "incremental.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sizes = bench.zipf_sizes(10_000, 1000)
    assert sizes.sum() == 10_000 and sizes[0] > sizes[10] > sizes[500] >= 1
    identity = np.repeat(np.arange(len(sizes)), sizes)
    population = bench.Population(0)
    centres, spreads = population.identities(len(sizes), np.random.default_rng(0))
    truth = {"identity": identity, "centres": centres, "spreads": spreads}
    within, between = bench.geometry(truth, 0)
    assert 0.4 < within < 0.55 and 0.7 < between < 0.9
    photo = bench.photos_of(identity, np.random.default_rng(0))
    pairs = np.unique(np.stack([photo, identity], 1), axis=0)
    assert len(pairs) == len(identity)  # never one person twice in a photo
