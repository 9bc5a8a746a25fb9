"""The "same person?" queue: what it asks, what answers do, and what it never asks again.

Stores are real SQLite files holding synthetic embeddings (one photo per face unless a test
says otherwise); a "clustering" with known mistakes is written with ``save_assignments``.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecluster import api
from facecluster.cli import main
from facecluster.scan import encode_jpeg
from facecluster.store import FaceRecord, Store
from facecluster.store import people as P
from facecluster.suggest import Question, answer, suggest

CHIP = encode_jpeg(np.full((150, 150, 3), 128, np.uint8))
CENTRES = np.random.default_rng(11).normal(size=(4, 128))
CENTRES *= 0.55 / np.linalg.norm(CENTRES, axis=1, keepdims=True)
ALGORITHMS = [("graph", {}), ("hac", {}), ("dbscan", {"eps": 0.3, "min_samples": 2}),
              ("chinese-whispers", {})]


def face(identity: int, rng, box=(0, 0, 10, 10)) -> FaceRecord:
    vector = CENTRES[identity] + rng.normal(scale=0.2 / np.sqrt(128), size=128) * np.sqrt(2)
    return FaceRecord(box=box, score=1, detector="hog", landmarks=[], sharpness=1, chip_jpeg=CHIP,
                      model="dlib_resnet_v1", embedding=vector)


def make_store(path, per_person: int = 8, identities: int = 4, seed: int = 0) -> dict[int, list[int]]:
    """One photo per face; returns identity -> face ids."""
    rng = np.random.default_rng(seed)
    faces: dict[int, list[int]] = {}
    with Store(path) as store:
        for k in range(per_person * identities):
            record = face(k % identities, rng)
            store.save_media(f"/p/{k:03d}.jpg", size=1, mtime=1, digest=None, run_id=None, faces=[record])
            faces.setdefault(k % identities, []).append(record.id)
    return faces


def assign(path, groups: list[list[int]]) -> list[int]:
    """Write a clustering: each group of faces one new person; returns their ids."""
    with Store(path) as store:
        people = [store.new_person() for _ in groups]
        rows = [(f, p) for group, p in zip(groups, people) for f in group]
        with store.transaction():
            store.db.execute("DELETE FROM assignments")
            store.db.executemany("INSERT INTO assignments VALUES (?, ?, 1.0, NULL)", rows)
    return people


def split_store(path) -> tuple[dict[int, list[int]], list[int]]:
    """Identity 0 wrongly split in two people; the other identities right."""
    faces = make_store(path)
    halves = [faces[0][:4], faces[0][4:]]
    return faces, assign(path, halves + [faces[i] for i in (1, 2, 3)])


def questions(path, limit: int = 50) -> list[Question]:
    with Store(path) as store:
        return suggest(store, limit=limit)


def reply(path, question_id: str, text: str) -> str:
    with Store(path) as store:
        return answer(store, question_id, text)


def person_of(path) -> dict[int, int | None]:
    with Store(path) as store:
        return {f: p for f, (p, _) in store.assignments().items()}


def dump(path) -> list:
    with Store(path) as store:
        return [store.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("people", "assignments", "confirmed", "rejected", "not_person", "corrections",
                          "skipped")]


def test_a_split_person_is_the_first_question(tmp_path):
    db = tmp_path / "f.db"
    _, people = split_store(db)
    first = questions(db)[0]
    assert first.kind == "people" and {first.person, first.other} == set(people[:2])
    assert first.id == f"people:{first.person}:{first.other}"
    assert first.probability > 0.5 and first.value > 0
    assert len(first.faces) == len(first.other_faces) == 4


def test_yes_merges_and_undo_restores(tmp_path):
    db = tmp_path / "f.db"
    faces, _ = split_store(db)
    before = person_of(db)
    first = questions(db)[0]
    assert reply(db, first.id, "yes") == f"merged person {first.other} into person {first.person}"
    assert {person_of(db)[f] for f in faces[0]} == {first.person}
    assert not any(q.kind == "people" and first.other in (q.person, q.other) for q in questions(db))
    with Store(db) as store:
        P.undo(store)
    assert person_of(db) == before
    assert questions(db)[0].id == first.id


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=[a for a, _ in ALGORITHMS])
def test_no_keeps_them_apart_and_is_not_asked_again(tmp_path, algorithm):
    db = tmp_path / "f.db"
    faces, _ = split_store(db)
    first = questions(db)[0]
    assert reply(db, first.id, "no") == f"person {first.person} and person {first.other} are kept apart"
    pair = {first.person, first.other}
    for name, params in [algorithm, ("graph", {})]:
        api.cluster(db, name, **params)
        now = person_of(db)
        assert {now[f] for f in faces[0][:4]}.isdisjoint({now[f] for f in faces[0][4:]})
        assert not any(q.kind == "people" and {q.person, q.other} == pair for q in questions(db))
    with pytest.raises(P.CorrectionError, match="already keep"):
        reply(db, first.id, "yes")


def test_a_face_in_the_wrong_person_is_asked_about(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    stray = faces[1][0]
    people = assign(db, [faces[0] + [stray], faces[1][1:], faces[2], faces[3]])
    first = questions(db)[0]
    assert (first.kind, first.other, first.person) == ("face", stray, people[1])
    assert first.id == f"face:{stray}:{people[1]}" and first.other_faces == [stray]
    assert reply(db, first.id, "yes") == f"moved face {stray} to person {people[1]}"
    assert person_of(db)[stray] == people[1]
    assert not any(q.kind == "face" and q.other == stray for q in questions(db))


def test_a_face_said_no_to_never_joins_that_person(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    stray = faces[1][0]
    people = assign(db, [faces[0] + [stray], faces[1][1:], faces[2], faces[3]])
    reply(db, f"face:{stray}:{people[1]}", "no")
    assert not any(q.id == f"face:{stray}:{people[1]}" for q in questions(db))
    for name, params in ALGORITHMS:
        api.cluster(db, name, **params)
        assert person_of(db)[stray] != people[1]


def test_unknown_faces_are_asked_about(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    lost = faces[2][0]
    people = assign(db, [faces[0], faces[1], faces[2][1:], faces[3]])
    with Store(db) as store:
        store.db.execute("UPDATE assignments SET person_id=NULL WHERE face_id=?", (lost,))
    assert questions(db)[0].id == f"face:{lost}:{people[2]}"


def test_skipped_questions_are_not_asked_again(tmp_path):
    db = tmp_path / "f.db"
    split_store(db)
    first = questions(db)[0]
    assert "not be asked again" in reply(db, first.id, "skip")
    reverse = f"people:{first.other}:{first.person}"
    assert all(q.id not in (first.id, reverse) for q in questions(db))
    with pytest.raises(P.CorrectionError, match="skipped"):
        reply(db, reverse, "yes")


def test_the_named_person_keeps_its_id(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    people = assign(db, [faces[0][:6], faces[0][6:], faces[1], faces[2], faces[3]])
    with Store(db) as store:
        store.db.execute("UPDATE people SET name='Ann' WHERE id=?", (people[1],))  # named, not settled
    first = questions(db)[0]
    assert (first.person, first.other) == (people[1], people[0])  # smaller, but named
    reply(db, first.id, "yes")
    with Store(db) as store:
        assert P.get_person(store, people[1]).name == "Ann" and P.get_person(store, people[1]).faces == 8


def test_people_in_one_photo_are_never_asked_about(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    rng = np.random.default_rng(5)
    with Store(db) as store:  # a photo with one face of each half
        pair = [face(0, rng, (0, 0, 10, 10)), face(0, rng, (20, 0, 30, 10))]
        store.save_media("/p/group.jpg", size=1, mtime=1, digest=None, run_id=None, faces=pair)
    halves = [faces[0][:4] + [pair[0].id], faces[0][4:] + [pair[1].id]]
    people = assign(db, halves + [faces[i] for i in (1, 2, 3)])
    assert not any(q.kind == "people" and {q.person, q.other} == set(people[:2]) for q in questions(db))


@pytest.mark.parametrize("question_id, text, message", [
    ("nonsense", "yes", "not a question id"),
    ("people:1:1", "yes", "same as itself"),
    ("people:999:1", "no", "no person 999"),
    ("face:999999:1", "yes", "no face 999999"),
    ("people:1:2", "maybe", "yes, no or skip"),
])
def test_bad_questions_are_refused_and_change_nothing(tmp_path, question_id, text, message):
    db = tmp_path / "f.db"
    split_store(db)
    before = dump(db)
    with pytest.raises(P.CorrectionError, match=message):
        reply(db, question_id, text)
    assert dump(db) == before


def test_out_of_date_questions_are_refused(tmp_path):
    db = tmp_path / "f.db"
    faces, _ = split_store(db)
    first = questions(db)[0]
    reply(db, first.id, "yes")
    placed, said_no = faces[1][0], faces[2][0]
    with Store(db) as store:
        P.confirm_faces(store, [placed])
        P.not_this_person(store, said_no, first.person)
    home = person_of(db)[placed]
    before = dump(db)
    for stale, message in [(first.id, f"merged into person {first.person}"),
                           (f"face:{placed}:{first.person}", f"you put face {placed} in person {home} yourself"),
                           (f"face:{placed}:{home}", f"you put face {placed} in person {home} yourself"),
                           (f"face:{said_no}:{first.person}", f"you said face {said_no} is not person")]:
        with pytest.raises(P.CorrectionError, match=message):
            reply(db, stale, "yes")
        assert dump(db) == before


def test_a_face_that_fits_its_person_badly_is_asked_whether_it_is_that_person(tmp_path):
    """Face F of an identity nobody else has is clustered into person A: "is F really A?"."""
    db = tmp_path / "f.db"
    faces = make_store(db)
    stray = faces[3][0]
    people = assign(db, [faces[0] + [stray], faces[1], faces[2]])  # identity 3's other faces: unknown
    with Store(db) as store:
        store.db.executemany("UPDATE assignments SET person_id=NULL WHERE face_id=?", [(f,) for f in faces[3][1:]])
    first = next(q for q in questions(db) if q.other == stray)
    assert first.id == f"face:{stray}:{people[0]}" and first.kind == "face" and first.person == people[0]
    assert first.probability < 0.5 and stray not in first.faces and first.other_faces == [stray]
    before = person_of(db)
    assert reply(db, first.id, "no") == (f"took face {stray} out of person {people[0]};"
                                         f" it will not join person {people[0]} again")
    assert person_of(db)[stray] is None
    assert not any(q.id == first.id for q in questions(db, limit=100))
    with Store(db) as store:
        P.undo(store)
    assert person_of(db) == before and questions(db)[0].id == first.id
    reply(db, first.id, "no")
    for name, params in ALGORITHMS:
        api.cluster(db, name, **params)
        assert person_of(db)[stray] != people[0]


def test_cli_says_where_the_face_is(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    stray = faces[3][0]
    people = assign(db, [faces[0] + [stray], faces[1], faces[2]])
    with Store(db) as store:
        store.db.executemany("UPDATE assignments SET person_id=NULL WHERE face_id=?", [(f,) for f in faces[3][1:]])
    listed = CliRunner().invoke(main, ["suggest", "--db", str(db), "--limit", "50"])
    assert listed.exit_code == 0, listed.output
    line = next(x for x in listed.output.splitlines() if x.startswith(f"face:{stray}:"))
    assert f"is face {stray} really person {people[0]}" in line and "(it is in it now)" in line
    unknown = next(x for x in listed.output.splitlines() if x.startswith(f"face:{faces[3][1]}:"))
    assert f"is face {faces[3][1]} (unknown now) person " in unknown


def test_yes_about_a_face_s_own_person_confirms_it_there(tmp_path):
    db = tmp_path / "f.db"
    faces = make_store(db)
    face_id = faces[0][0]
    people = assign(db, [faces[0], faces[1], faces[2], faces[3]])
    assert reply(db, f"face:{face_id}:{people[0]}", "yes") == f"confirmed face {face_id} in person {people[0]}"
    with Store(db) as store:
        assert store.db.execute("SELECT person_id, explicit FROM confirmed WHERE face_id=?",
                                (face_id,)).fetchone()[:] == (people[0], 1)
    assert not any(q.kind == "face" and q.other == face_id for q in questions(db, limit=100))
    with pytest.raises(P.CorrectionError, match="yourself"):
        reply(db, f"face:{face_id}:{people[1]}", "yes")
    with Store(db) as store:
        P.undo(store)
        assert store.db.execute("SELECT 1 FROM confirmed WHERE face_id=?", (face_id,)).fetchone() is None


def test_after_no_a_face_is_asked_about_people_beyond_the_nearest(tmp_path):
    """Every "no" rules a person out; the next question names the next likeliest person, so
    a face is asked about every person it may be, not only its nearest few."""
    db = tmp_path / "f.db"
    faces = make_store(db, identities=4)
    lost = faces[3][0]
    assign(db, [faces[0], faces[1], faces[2], faces[3][1:]])
    with Store(db) as store:
        store.db.execute("UPDATE assignments SET person_id=NULL WHERE face_id=?", (lost,))
    asked = []
    while True:
        found = [q for q in questions(db, limit=1000) if q.other == lost]
        if not found:
            break
        asked.append(found[0].person)
        reply(db, found[0].id, "no")
    assert len(asked) == len(set(asked)) == 4  # all four people, nearest (its own identity) first
    assert asked[0] == person_of(db)[faces[3][1]]


def test_the_value_is_the_expected_bcubed_gain(tmp_path):
    """A person split in halves of 4 and 4: a yes joins each face with 4 more (recall 1/2 -> 1),
    BCubed precision plus recall summed over faces gains 8 * 1/2 = 2 * 4 * 4 / (4 + 4)."""
    db = tmp_path / "f.db"
    split_store(db)
    first = questions(db)[0]
    assert first.value == pytest.approx(first.probability * 4)


def test_cli_suggest_and_answer_round_trip(tmp_path):
    db = tmp_path / "f.db"
    faces, _ = split_store(db)
    runner = CliRunner()
    listed = runner.invoke(main, ["suggest", "--db", str(db), "--limit", "3", "--json"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)["questions"]
    assert 1 <= len(found) <= 3 and found[0]["kind"] == "people"
    assert set(found[0]) == {"id", "kind", "person", "other", "probability", "value", "faces", "other_faces"}
    text = runner.invoke(main, ["suggest", "--db", str(db), "--limit", "1"])
    assert text.exit_code == 0 and found[0]["id"] in text.output
    done = runner.invoke(main, ["answer", found[0]["id"], "YES", "--db", str(db), "--json"])
    assert done.exit_code == 0, done.output
    merged = f"merged person {found[0]['other']} into person {found[0]['person']}"
    assert json.loads(done.output) == {"ok": True, "question": found[0]["id"], "reply": "yes",
                                       "message": merged}
    assert {person_of(db)[f] for f in faces[0]} == {found[0]["person"]}
    for args in (["answer", found[0]["id"], "yes"], ["answer", "people:x", "no"],
                 ["answer", found[0]["id"], "perhaps"]):
        bad = runner.invoke(main, [*args, "--db", str(db)])
        assert bad.exit_code == 1 and bad.output.startswith("Error: ") and "Traceback" not in bad.output
        assert len(bad.output.strip().splitlines()) == 1
    assert runner.invoke(main, ["suggest", "--db", str(db), "--limit", "0"]).exit_code == 2
    assert runner.invoke(main, ["undo", "--db", str(db)]).exit_code == 0
    assert len({person_of(db)[f] for f in faces[0]}) == 2


# -- property: after any answers, nothing answered or settled is asked ---------------------------

def key(question: Question) -> tuple:
    """A question as what it asks: a pair of people (unordered) or a face and a person."""
    if question.kind == "people":
        return ("people", frozenset((question.person, question.other)))
    return ("face", question.other, question.person)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A clustered store with mistakes (a split, a stray face, an unknown one), built once."""
    db = tmp_path_factory.mktemp("template") / "f.db"
    faces = make_store(db, per_person=6, seed=3)
    assign(db, [faces[0][:3], faces[0][3:] + [faces[1][0]], faces[1][1:-1], faces[2], faces[3]])
    return db


def copy_of(template, folder) -> str:
    target = folder / "copy.db"
    target.unlink(missing_ok=True)
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(answers=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["yes", "no", "skip"])), max_size=10),
       recluster=st.booleans())
def test_nothing_answered_or_settled_is_asked(template, tmp_path_factory, answers, recluster):
    db = copy_of(template, tmp_path_factory.mktemp("run"))
    asked = set()
    for pick, text in answers:
        found = questions(db, limit=10)
        with Store(db) as store:
            settled = {r[0] for r in store.db.execute("SELECT person_id FROM confirmed")}
            merged = {r[0] for r in store.db.execute("SELECT id FROM people WHERE merged_into IS NOT NULL")}
            placed = {r[0] for r in store.db.execute("SELECT face_id FROM confirmed WHERE explicit=1")}
            said_no = set(store.db.execute("SELECT face_id, person_id FROM not_person").fetchall())
        assert len({q.id for q in found}) == len(found)
        for question in found:
            assert key(question) not in asked, question.id
            if question.kind == "people":
                assert not {question.person, question.other} <= settled
                assert not {question.person, question.other} & merged
            else:
                assert question.other not in placed
                assert (question.other, question.person) not in said_no
        if not found:
            break
        chosen = found[pick % len(found)]
        reply(db, chosen.id, text)
        asked.add(key(chosen))
        if recluster:
            api.cluster(db)
