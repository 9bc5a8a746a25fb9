"""Corrections hold after every later clustering (any algorithm), new photos and rescans.

The property test runs random sequences of corrections, re-clusterings by every algorithm, new
faces and rescans against a real SQLite store, and after every step checks the seven promises
of a correction against a model of what the user asked for.
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from facecluster import api
from facecluster.cli import main
from facecluster.cluster import GraphClusterer
from facecluster.scan import encode_jpeg
from facecluster.store import FaceRecord, Store
from facecluster.store import people as P

CHIP = encode_jpeg(np.full((150, 150, 3), 128, np.uint8))
CENTRES = np.random.default_rng(7).normal(size=(4, 128))
CENTRES *= 0.55 / np.linalg.norm(CENTRES, axis=1, keepdims=True)


def face_record(person: int, rng, box=(0, 0, 10, 10)) -> FaceRecord:
    vector = CENTRES[person] + rng.normal(scale=0.2 / np.sqrt(128), size=128) * np.sqrt(2)
    return FaceRecord(box=box, score=1, detector="hog", landmarks=[], sharpness=1, chip_jpeg=CHIP,
                      model="dlib_resnet_v1", embedding=vector)


def add_photos(store: Store, rng, count: int, prefix: str) -> None:
    """Photos of the synthetic people; every third holds two people (one cannot-link pair)."""
    for k in range(count):
        people = [k % 3] if k % 3 else [k % 4, (k + 1) % 4]
        faces = [face_record(p, rng, box=(20 * i, 0, 20 * i + 10, 10)) for i, p in enumerate(people)]
        store.save_media(f"/p/{prefix}_{k:03d}.jpg", size=1, mtime=1, digest=None, run_id=None, faces=faces)


def make_store(path, seed=0, photos=24):
    with Store(path) as store:
        add_photos(store, np.random.default_rng(seed), photos, "a")
    return path


def person_of(db) -> dict[int, int | None]:
    with Store(db) as store:
        return {f: p for f, (p, _) in store.assignments().items()}


def test_corrections_survive_reclustering(tmp_path):
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    first = person_of(db)
    with Store(db) as store:
        people = [p.id for p in P.list_people(store)]
        a, b, c = people[:3]
        P.name_person(store, a, "Ann")
        merged = P.merge_people(store, [a, b])
        c_faces = P.person_faces(store, c)
        split = P.move_faces(store, c_faces[:2], None)
        rejected = P.person_faces(store, None)[:1] or c_faces[2:3]
        P.reject_faces(store, rejected)
    assert merged == a and first
    for algorithm in ("graph", "hac", "graph", "dbscan", "chinese-whispers"):
        api.cluster(db, algorithm)
        now = person_of(db)
        with Store(db) as store:
            assert P.get_person(store, a).name == "Ann"
            assert set(P.person_faces(store, split)) >= set(c_faces[:2])
            assert not set(P.person_faces(store, c)) & set(c_faces[:2])
            assert not set(rejected) & set(now)  # in no person, not unknown
            assert set(P.rejected_faces(store)) == set(rejected)


def test_nonsense_is_refused_and_changes_nothing(tmp_path):
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    with Store(db) as store:
        person = P.list_people(store)[0]
        face = P.person_faces(store, person.id)[0]
        before = dump(store)
        for action, args, message in [
            (P.merge_people, ([person.id, person.id],), "cannot be merged with itself"),
            (P.merge_people, ([person.id, 999],), "no person 999"),
            (P.move_faces, ([face], person.id), "already in person"),
            (P.name_person, (person.id, "  "), "cannot be empty"),
            (P.move_faces, ([424242], None), "no face 424242"),
            (P.unreject_faces, ([face],), "is not rejected"),
            (P.confirm_faces, (P.person_faces(store, None)[:1] or [10**9],), "in no person|no face"),
            (P.undo, (), "nothing to undo"),
        ]:
            with pytest.raises(P.CorrectionError, match=message):
                action(store, *args)
            assert dump(store) == before


def test_people_commands_use_folder_numbers(tmp_path):
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    out = tmp_path / "people"
    runner = CliRunner()
    assert runner.invoke(main, ["export", "--db", str(db), "-o", str(out), "-q"]).exit_code == 0
    folder = sorted(p.name for p in out.iterdir() if p.name.startswith("person_"))[0]
    number = int(folder.split("_")[1])
    result = runner.invoke(main, ["name", str(number), "Bob", "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        assert P.get_person(store, number).name == "Bob"
    bad = runner.invoke(main, ["merge", "Bob", "Bob", "--db", str(db)])
    assert bad.exit_code != 0 and "merged with itself" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(main, ["move", "4242", "--db", str(db)])
    assert bad.exit_code != 0 and "no face 4242" in bad.output
    assert runner.invoke(main, ["undo", "--db", str(db)]).exit_code == 0
    with Store(db) as store:
        assert P.get_person(store, number).name is None
    runner.invoke(main, ["name", folder, "Bob", "--db", str(db)])
    assert runner.invoke(main, ["export", "--db", str(db), "-o", str(out), "-q"]).exit_code == 0
    with open(out / "faces.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["person_id"] for r in rows if r["person"] == "Bob"} == {str(number)}


def test_identical_scans_in_any_order_give_identical_people(tmp_path):
    rng = np.random.default_rng(3)
    photos = [(f"/p/{k:03d}.jpg", face_record(k % 4, rng)) for k in range(40)]
    results = []
    for attempt, order in enumerate([range(40), reversed(range(40)), np.random.default_rng(1).permutation(40)]):
        db = tmp_path / f"{attempt}.db"
        with Store(db) as store:
            for k in order:
                path, face = photos[k]
                store.save_media(path, size=1, mtime=1, digest=None, run_id=None, faces=[copy.copy(face)])
        api.cluster(db)
        with Store(db) as store:
            paths = dict(store.db.execute("SELECT f.id, m.path FROM faces f JOIN media m ON m.id=f.media_id"))
            results.append(sorted((paths[f], p) for f, (p, _) in store.assignments().items()))
    assert results[0] == results[1] == results[2]


def test_apart_pairs_keep_people_apart():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=0.01, size=(10, 128))  # one tight group...
    labels = GraphClusterer().fit_predict(X, must_link=np.r_[[0] * 5, [1] * 5], apart=[(0, 9)])
    assert labels[0] != labels[9]  # ...that the user said is two people


def dump(store: Store) -> list:
    tables = ["people", "assignments", "confirmed", "rejected", "not_person", "corrections"]
    return [store.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables]


ALGORITHMS = st.sampled_from([("graph", {}), ("graph", {"seed": 3}), ("hac", {}), ("hac", {"threshold": 0.3}),
                              ("dbscan", {}), ("dbscan", {"eps": 0.3, "min_samples": 2}),
                              ("chinese-whispers", {}), ("chinese-whispers", {"threshold": 0.7})])


class CorrectionsHold(RuleBasedStateMachine):
    """The user's model: what each correction promised, checked after every step."""

    def __init__(self):
        super().__init__()
        import tempfile
        from pathlib import Path

        self.folder = tempfile.TemporaryDirectory()
        self.db = Path(self.folder.name) / "faces.db"
        self.rng = np.random.default_rng(0)
        self.batches = 1
        make_store(self.db, photos=15)
        api.cluster(self.db)
        self.model = {"confirmed": {}, "rejected": set(), "names": {}}
        self.history: list[dict] = []

    def teardown(self):
        self.folder.cleanup()

    # -- helpers --
    def store(self):
        return Store(self.db)

    def people(self) -> list[int]:
        with self.store() as store:
            return [p.id for p in P.list_people(store)]

    def faces(self) -> list[int]:
        with self.store() as store:
            return [r[0] for r in store.db.execute("SELECT id FROM faces ORDER BY id")]

    def settle(self, store, person):
        for face in P.person_faces(store, person):
            self.model["confirmed"][face] = person

    def correct(self, action, *args, settles=()):
        with self.store() as store:
            before = copy.deepcopy(self.model)
            for person in settles:
                self.settle(store, person)
            try:
                result = action(store, *args)
            except P.CorrectionError:
                self.model = before
                return False, None
            self.history.append(before)
            return True, result

    # -- rules --
    @rule(algorithm=ALGORITHMS)
    def recluster(self, algorithm):
        api.cluster(self.db, algorithm[0], **algorithm[1])

    @rule(count=st.integers(1, 4))
    def new_photos(self, count):
        with self.store() as store:
            add_photos(store, self.rng, count, f"b{self.batches}")
        self.batches += 1

    @rule(data=st.data())
    def rescan_a_photo(self, data):
        with self.store() as store:
            paths = [r[0] for r in store.db.execute("SELECT path FROM media ORDER BY path")]
            path = data.draw(st.sampled_from(paths))
            boxes = [tuple(r) for r in store.db.execute(
                "SELECT f.left+1, f.top, f.right+1, f.bottom FROM faces f JOIN media m ON m.id=f.media_id"
                " WHERE m.path=? ORDER BY f.left", (path,))]
            faces = [face_record(int(self.rng.integers(4)), self.rng, box) for box in boxes]
            store.save_media(path, size=2, mtime=2, digest=None, run_id=None, faces=faces)

    @precondition(lambda self: self.people())
    @rule(data=st.data(), name=st.sampled_from(["Ann", "Bob", "Cy", "Dee"]))
    def name(self, data, name):
        person = data.draw(st.sampled_from(self.people()))
        if self.correct(P.name_person, person, name, settles=[person])[0]:
            self.model["names"][person] = name

    @precondition(lambda self: len(self.people()) >= 2)
    @rule(data=st.data())
    def merge(self, data):
        a, b = data.draw(st.lists(st.sampled_from(self.people()), min_size=2, max_size=2, unique=True))
        names = self.model["names"]
        if self.correct(P.merge_people, [a, b], settles=[a, b])[0]:
            self.model["confirmed"] = {f: a if p == b else p for f, p in self.model["confirmed"].items()}
            if b in names:
                names.setdefault(a, names.pop(b))

    @rule(data=st.data(), to_new=st.booleans())
    def move(self, data, to_new):
        faces = data.draw(st.lists(st.sampled_from(self.faces()), min_size=1, max_size=3, unique=True))
        people = self.people()
        target = None if to_new or not people else data.draw(st.sampled_from(people))
        with self.store() as store:
            sources = {p for f in faces if (p := store.assignments().get(f, (None,))[0]) is not None}
        ok, person = self.correct(P.move_faces, faces, target, settles=sorted(sources | ({target} - {None})))
        if ok:
            for face in faces:
                self.model["confirmed"][face] = person
                self.model["rejected"].discard(face)

    @rule(data=st.data())
    def reject(self, data):
        faces = data.draw(st.lists(st.sampled_from(self.faces()), min_size=1, max_size=2, unique=True))
        if self.correct(P.reject_faces, faces)[0]:
            for face in faces:
                self.model["rejected"].add(face)
                self.model["confirmed"].pop(face, None)

    @precondition(lambda self: self.model["rejected"])
    @rule(data=st.data())
    def unreject(self, data):
        face = data.draw(st.sampled_from(sorted(self.model["rejected"])))
        if self.correct(P.unreject_faces, [face])[0]:
            self.model["rejected"].discard(face)

    @precondition(lambda self: self.history)
    @rule()
    def undo(self):
        with self.store() as store:
            P.undo(store)
        self.model = self.history.pop()

    @rule(data=st.data())
    def nonsense(self, data):
        people = self.people()
        with self.store() as store:
            before = dump(store)
            attempts = [lambda: P.merge_people(store, [people[0] if people else 10_000] * 2),
                        lambda: P.name_person(store, 10_000, "X"),
                        lambda: P.name_person(store, people[0] if people else 10_000, ""),
                        lambda: P.move_faces(store, [10_000_000], None)]
            with pytest.raises(P.CorrectionError):
                data.draw(st.sampled_from(attempts))()
            assert dump(store) == before

    # -- the promises --
    @invariant()
    def promises_hold(self):
        with self.store() as store:
            assigned = {f: p for f, (p, _) in store.assignments().items()}
            present = set(self.faces())
            for face, person in self.model["confirmed"].items():  # 1, 2, 3, 5: confirmed faces stay
                if face in present:
                    assert assigned.get(face) == person, (face, person, assigned.get(face))
            for face in self.model["rejected"] & present:  # 4: rejected faces are in nothing
                assert face not in assigned
            assert set(P.rejected_faces(store)) == self.model["rejected"] & present
            for person, name in self.model["names"].items():  # 5: names stay
                if any(p == person for p in self.model["confirmed"].values()):
                    assert P.get_person(store, person).name == name


CorrectionsHold.TestCase.settings = settings(max_examples=60, stateful_step_count=16, deadline=None,
                                             suppress_health_check=list(HealthCheck))
test_corrections_hold_property = CorrectionsHold.TestCase


def test_corrections_hold_end_to_end_on_real_faces(sample_folder, tmp_path):
    """The issue's scenario with the CLI on real photos: every correction holds after two more
    runs and a re-cluster with another algorithm, and the folders follow."""
    out, runner = tmp_path / "people", CliRunner()
    db = str(out / "faces.db")

    def cli(*args):
        result = runner.invoke(main, [*args, "--db", db] if args[0] not in ("run",) else list(args))
        assert result.exit_code == 0, result.output
        return result.output

    cli("run", str(sample_folder), "-o", str(out), "-q")
    with Store(db) as store:
        obama = P.list_people(store)[0].id
        obama_faces = P.person_faces(store, obama)
        unknown = P.person_faces(store, None)
    assert len(obama_faces) >= 5 and unknown
    biden = int(cli("split", str(unknown[0]), "--name", "Joe").split()[-1])
    cli("name", f"person_{obama:04d}", "Barack")
    split_off = obama_faces[-2:]
    cli("split", *map(str, split_off))
    cli("reject", str(obama_faces[0]))
    for step in ("run", "run", "cluster"):
        if step == "run":
            cli("run", str(sample_folder), "-o", str(out), "-q")
        else:
            cli("cluster", "--algorithm", "hac")
            cli("export", "-o", str(out), "-q")
        with Store(db) as store:
            assert P.resolve_person(store, "Barack") == obama
            assert P.person_faces(store, biden) == [unknown[0]]
            kept = set(P.person_faces(store, obama))
            assert kept == set(obama_faces[1:-2])
            assert obama_faces[0] in P.rejected_faces(store)
    unknown_chips = {p.name for p in (out / "unknown" / "faces").glob("*.jpg")} if (out / "unknown").exists() else set()
    assert not any(f"face{obama_faces[0]}." in name for name in unknown_chips)
    assert (out / "Barack" / "montage.jpg").exists() and (out / "Joe").is_dir()
    listing = cli("people", "--json")
    assert '"rejected_faces": 1' in listing
    with open(out / "faces.csv") as f:
        rows = {int(r["face_id"]): r for r in csv.DictReader(f)}
    assert rows[obama_faces[0]]["person"] == "rejected" and rows[obama_faces[0]]["person_id"] == ""
    assert json.loads((out / "people.json").read_text())["rejected_faces"] == 1


def test_people_keep_their_ids_after_a_clustering_that_lost_them(tmp_path):
    """Trying another algorithm that leaves everyone unknown, then going back, brings every
    person back under the id (and folder) the user knew."""
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    before = person_of(db)
    api.cluster(db, "dbscan", eps=0.01, min_samples=5)
    assert not any(person_of(db).values())
    api.cluster(db, "hac", threshold=0.3)
    api.cluster(db)
    assert person_of(db) == before


def test_quiet_keeps_the_answer_of_a_query(tmp_path):
    """-q drops progress and summaries, never what a query command was asked for."""
    db = make_store(tmp_path / "f.db")
    api.cluster(db)
    runner = CliRunner()
    listing = runner.invoke(main, ["people", "--db", str(db), "-q"])
    assert listing.exit_code == 0 and "person_" in listing.output and "unknown" in listing.output
    first = json.loads(runner.invoke(main, ["people", "--db", str(db), "--json"]).output)["people"][0]
    named = runner.invoke(main, ["name", str(first["id"]), "Bob", "--db", str(db), "-q"])
    assert named.exit_code == 0 and named.output == ""  # a correction says nothing when quiet
    questions = runner.invoke(main, ["suggest", "--db", str(db), "-q"])
    assert questions.exit_code == 0 and questions.output.strip() != ""
