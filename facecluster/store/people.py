"""People, their ids and the user's corrections: the one place that writes them.

A correction is stored as *state*, not as a log to replay, so that every later clustering, by
any algorithm, with any parameters, after any rescan, can honour it exactly:

* ``confirmed`` (face -> person): faces the user put in a person (``explicit``), or that were
  in a person when the user settled it. They stay in it.
* ``rejected``: faces that belong to nobody (not a face, a stranger, a poster). They are left
  out of clustering, out of every person and out of ``unknown``.
* ``not_person`` (face, person): a face the user said is not that person.
* ``people.merged_into``: a person merged into another; its id still resolves to the other.

A person the user has acted on (named, merged, split, moved faces into or out of, answered a
"same person?" question about) is *settled*: all its faces at that moment are confirmed. A
settled person keeps its id, name and faces, new faces may join it, and two settled people are
never merged by clustering. The user reviewed it; the machine does not undo that.

Every correction is one transaction and keeps an undo record (the previous state of every face
and person it touched); :func:`undo` restores the latest one. Nonsense is refused with
:class:`CorrectionError` and changes nothing.

>>> with Store("faces.db") as store:                                 # doctest: +SKIP
...     name_person(store, 3, "Grandma")
...     merge_people(store, [3, 7])
...     move_faces(store, [120, 121], None)          # split them off as a new person
...     undo(store)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facecluster.store import Store


class CorrectionError(ValueError):
    """A correction that makes no sense here; the message says why, nothing was changed."""


@dataclass
class Person:
    """A person as the user sees it."""

    id: int
    name: str | None
    faces: int
    best_face: int | None = None

    @property
    def folder(self) -> str:
        return folder_name(self.id, self.name)


@dataclass
class Constraints:
    """What the user's corrections require of a clustering."""

    confirmed: dict[int, int] = field(default_factory=dict)  # face id -> person id
    rejected: set[int] = field(default_factory=set)
    not_person: list[tuple[int, int]] = field(default_factory=list)  # (face id, person id)


# -- reading ------------------------------------------------------------------------------------

def folder_name(person_id: int, name: str | None) -> str:
    """The person's folder (and display handle): their name as a file name, else person_0012."""
    slug = re.sub(r"[^\w\- ]+", "", name or "").strip().replace(" ", "_")[:80]
    return slug or f"person_{person_id:04d}"


def list_people(store: Store) -> list[Person]:
    """People that have faces, largest first (ties: lower id first), with their best faces:
    :func:`people_counts` and :func:`best_faces` for 900 people a query (a store of a million
    faces and 50,000 people lists in seconds, not one query per person)."""
    counts = people_counts(store)
    best: dict[int, int] = {}
    for start in range(0, len(counts), 900):
        best.update(best_faces(store, [p[0] for p in counts[start:start + 900]]))
    return [Person(p[0], p[1], p[2], best.get(p[0])) for p in counts]


def get_person(store: Store, person_id: int) -> Person:
    row = store.db.execute("SELECT id, name FROM people WHERE id=?", (person_id,)).fetchone()
    faces = store.db.execute("SELECT COUNT(*) FROM assignments WHERE person_id=?", (person_id,)).fetchone()[0]
    return Person(row[0], row[1], faces, _best_face(store, person_id))


def resolve_person(store: Store, ref: int | str) -> int:
    """A person id from what a user typed: ``12``, ``person_0012``, or a name."""
    text = str(ref).strip()
    match = re.fullmatch(r"(?:person_)?0*(\d+)", text)
    if match:
        return _live_person(store, int(match.group(1)))
    rows = store.db.execute("SELECT id FROM people WHERE name=? COLLATE NOCASE AND merged_into IS NULL",
                            (text,)).fetchall()
    if not rows:
        raise CorrectionError(f"no person called {text!r} (see `facecluster people`)")
    return rows[0][0]


def person_faces(store: Store, person_id: int | None, offset: int = 0,
                 limit: int | None = None) -> list[int]:
    """Face ids of a person (None: unknown faces), best first: confirmed, surest, sharpest."""
    where = "a.person_id IS NULL" if person_id is None else "a.person_id=?"
    args = () if person_id is None else (person_id,)
    return [r[0] for r in store.db.execute(
        "SELECT a.face_id FROM assignments a JOIN faces f ON f.id=a.face_id"
        " JOIN media m ON m.id=f.media_id LEFT JOIN confirmed c ON c.face_id=a.face_id"
        f" WHERE {where} AND m.status='ok'"
        " ORDER BY c.face_id IS NULL, a.confidence DESC, f.sharpness DESC, f.id"
        " LIMIT ? OFFSET ?", (*args, -1 if limit is None else limit, offset))]


def rejected_faces(store: Store) -> list[int]:
    return [r[0] for r in store.db.execute(
        "SELECT r.face_id FROM rejected r JOIN faces f ON f.id=r.face_id"
        " JOIN media m ON m.id=f.media_id WHERE m.status='ok' ORDER BY r.face_id")]


def constraints(store: Store) -> Constraints:
    return Constraints(
        confirmed=dict(store.db.execute("SELECT face_id, person_id FROM confirmed")),
        rejected={r[0] for r in store.db.execute("SELECT face_id FROM rejected")},
        not_person=[tuple(r) for r in store.db.execute("SELECT face_id, person_id FROM not_person")])


def history(store: Store, limit: int = 20) -> list[dict]:
    """The latest corrections, newest first."""
    return [{"id": r[0], "created": r[1], "action": r[2], **json.loads(r[3]), "undone": bool(r[4])}
            for r in store.db.execute("SELECT id, created, action, payload, undone FROM corrections"
                                      " ORDER BY id DESC LIMIT ?", (limit,))]


def _best_face(store: Store, person_id: int) -> int | None:
    faces = person_faces(store, person_id, limit=1)
    return faces[0] if faces else None


def _live_person(store: Store, person_id: int) -> int:
    row = store.db.execute("SELECT merged_into FROM people WHERE id=?", (person_id,)).fetchone()
    if row is None:
        raise CorrectionError(f"no person {person_id} (see `facecluster people`)")
    if row[0] is not None:
        raise CorrectionError(f"person {person_id} was merged into person {_final(store, row[0])}; "
                              f"use {_final(store, row[0])}")
    return person_id


def _final(store: Store, person_id: int) -> int:
    while True:
        row = store.db.execute("SELECT merged_into FROM people WHERE id=?", (person_id,)).fetchone()
        if row is None or row[0] is None:
            return person_id
        person_id = row[0]


# -- corrections --------------------------------------------------------------------------------

class _Recorder:
    """Remembers the state of every face and person before a correction changes it."""

    def __init__(self, store: Store):
        self.store = store
        self.faces: dict[int, list] = {}
        self.people: dict[int, list] = {}
        self.not_person: dict[int, list[int]] = {}  # person -> faces said not to be them, before
        self.created: list[int] = []

    def face(self, face_id: int) -> None:
        self.faces_of([face_id])

    def faces_of(self, face_ids: list[int]) -> None:
        db = self.store.db
        new = [f for f in face_ids if f not in self.faces]
        for start in range(0, len(new), 900):  # SQLite's limit on bound values
            chunk = new[start:start + 900]
            marks = _marks(chunk)
            assigned = {r[0]: list(r[1:]) for r in db.execute(
                f"SELECT face_id, person_id, confidence, run_id FROM assignments WHERE face_id IN ({marks})", chunk)}
            confirmed = {r[0]: list(r[1:]) for r in db.execute(
                f"SELECT face_id, person_id, explicit FROM confirmed WHERE face_id IN ({marks})", chunk)}
            rejected = {r[0] for r in db.execute(f"SELECT face_id FROM rejected WHERE face_id IN ({marks})", chunk)}
            for face in chunk:
                self.faces[face] = [assigned.get(face), confirmed.get(face), face in rejected]

    def person(self, person_id: int) -> None:
        if person_id not in self.people and person_id not in self.created:
            row = self.store.db.execute("SELECT name, merged_into FROM people WHERE id=?",
                                        (person_id,)).fetchone()
            self.people[person_id] = [row[0], row[1]]
        if person_id not in self.not_person:
            self.not_person[person_id] = [r[0] for r in self.store.db.execute(
                "SELECT face_id FROM not_person WHERE person_id=?", (person_id,))]

    def record(self) -> dict:
        return {"faces": self.faces, "people": self.people, "not_person": self.not_person,
                "created": self.created}


def _correction(store: Store, action: str, payload: dict, change) -> object:
    """Run ``change(recorder)`` and log it, all in one transaction."""
    with store.transaction():
        recorder = _Recorder(store)
        result = change(recorder)
        store.db.execute("INSERT INTO corrections (created, action, payload, undo) VALUES (?,?,?,?)",
                         (time.time(), action, json.dumps(payload), json.dumps(recorder.record())))
    return result


def _assign(rec: _Recorder, face_id: int, person_id: int | None, confirm: str | None = "settled") -> None:
    """Put a face in a person (None: unknown). ``confirm``: "explicit" (the user put it there),
    "settled" (its person was settled; an explicit confirmation there stays explicit) or None."""
    rec.face(face_id)
    db = rec.store.db
    db.execute("INSERT OR REPLACE INTO assignments (face_id, person_id, confidence, run_id)"
               " VALUES (?, ?, 1.0, (SELECT run_id FROM assignments WHERE face_id=?))",
               (face_id, person_id, face_id))
    db.execute("DELETE FROM rejected WHERE face_id=?", (face_id,))
    if confirm and person_id is not None:
        db.execute("INSERT INTO confirmed VALUES (?, ?, ?) ON CONFLICT(face_id) DO UPDATE SET"
                   " explicit = excluded.explicit OR (confirmed.explicit AND confirmed.person_id=excluded.person_id),"
                   " person_id = excluded.person_id", (face_id, person_id, int(confirm == "explicit")))


def _settle(rec: _Recorder, person_id: int) -> None:
    """Confirm every face the person has now: the user has looked at this person."""
    db = rec.store.db
    rec.faces_of([r[0] for r in db.execute("SELECT face_id FROM assignments WHERE person_id=?", (person_id,))])
    db.execute("INSERT INTO confirmed SELECT face_id, person_id, 0 FROM assignments WHERE person_id=?"
               " ON CONFLICT(face_id) DO UPDATE SET"
               " explicit = confirmed.explicit AND confirmed.person_id=excluded.person_id,"
               " person_id = excluded.person_id", (person_id,))


def _new_person(rec: _Recorder, name: str | None = None) -> int:
    person = rec.store.new_person(name)
    rec.created.append(person)
    return person


def name_person(store: Store, person: int | str, name: str) -> int:
    """Give a person a name (their folder takes it); the person becomes settled."""
    person_id = resolve_person(store, person)
    name = (name or "").strip()
    if not name:
        raise CorrectionError("a name cannot be empty")
    if re.fullmatch(r"(?:person_)?\d+", name):
        raise CorrectionError(f"{name!r} looks like a person id; choose a name with letters")
    other = store.db.execute("SELECT id FROM people WHERE name=? COLLATE NOCASE AND id!=?"
                             " AND merged_into IS NULL", (name, person_id)).fetchone()
    if other:
        raise CorrectionError(f"person {other[0]} is already called {name!r}; if they are the same "
                              f"person, merge them: facecluster merge {other[0]} {person_id}")

    def change(rec):
        rec.person(person_id)
        store.db.execute("UPDATE people SET name=? WHERE id=?", (name, person_id))
        _settle(rec, person_id)
        return person_id

    return _correction(store, "name", {"person": person_id, "name": name}, change)


def merge_people(store: Store, people: list[int | str]) -> int:
    """Make several people one: the first keeps its id and name (or takes the first other name)."""
    ids = [resolve_person(store, p) for p in people]
    if len(ids) < 2:
        raise CorrectionError("merge needs at least two people")
    if len(set(ids)) < len(ids):
        raise CorrectionError(f"person {ids[0] if ids.count(ids[0]) > 1 else ids[1]} is named twice:"
                              " a person cannot be merged with itself")
    target, others = ids[0], ids[1:]

    def change(rec):
        for person in ids:
            rec.person(person)
        names = dict(store.db.execute(f"SELECT id, name FROM people WHERE id IN ({_marks(ids)})", ids))
        if not names[target]:
            first_name = next((names[p] for p in others if names[p]), None)
            store.db.execute("UPDATE people SET name=? WHERE id=?", (first_name, target))
        for person in others:
            for (face,) in store.db.execute("SELECT face_id FROM assignments WHERE person_id=?",
                                            (person,)).fetchall():
                _assign(rec, face, target)
            for face, explicit in store.db.execute("SELECT face_id, explicit FROM confirmed WHERE person_id=?",
                                                   (person,)).fetchall():  # also faces not present now
                _assign(rec, face, target, "explicit" if explicit else "settled")
            store.db.execute("INSERT OR IGNORE INTO not_person SELECT face_id, ? FROM not_person"
                             " WHERE person_id=?", (target, person))
            store.db.execute("DELETE FROM not_person WHERE person_id=?", (person,))
            store.db.execute("UPDATE people SET merged_into=?, name=NULL WHERE id=?", (target, person))
        _settle(rec, target)
        return target

    return _correction(store, "merge", {"people": ids}, change)


def move_faces(store: Store, faces: list[int], to_person: int | str | None = None,
               name: str | None = None) -> int:
    """Put faces in a person, or split them off as a new person (``to_person`` None).

    The faces stay in that person, and the people they came from keep the rest of their faces
    apart from them, after every later clustering. ``name`` names a new person.
    """
    faces = _check_faces(store, faces)
    target = None if to_person is None else resolve_person(store, to_person)
    sources = _current_people(store, faces)
    if target is not None and set(sources.values()) == {target}:
        raise CorrectionError(f"face {faces[0]} is already in person {target}" if len(faces) == 1
                              else f"these faces are already in person {target}")
    if name is not None and not name.strip():
        raise CorrectionError("a name cannot be empty")

    def change(rec):
        person = target if target is not None else _new_person(rec, name.strip() if name else None)
        for source in {p for p in sources.values() if p is not None and p != person}:
            _settle(rec, source)
        if target is not None:
            _settle(rec, target)
        for face in faces:
            _assign(rec, face, person, "explicit")
        return person

    return _correction(store, "move" if target is not None else "split",
                       {"faces": faces, "person": target, "name": name}, change)


def confirm_faces(store: Store, faces: list[int]) -> int:
    """The user says these faces are right where they are (one person): they stay there."""
    faces = _check_faces(store, faces)
    people = set(_current_people(store, faces).values())
    if None in people:
        raise CorrectionError("a face that is in no person cannot be confirmed; move it to a person")
    if len(people) > 1:
        raise CorrectionError("these faces are in different people; confirm one person's faces at a time")
    person = people.pop()

    def change(rec):
        _settle(rec, person)
        for face in faces:
            _assign(rec, face, person, "explicit")
        return person

    return _correction(store, "confirm", {"faces": faces, "person": person}, change)


def reject_faces(store: Store, faces: list[int]) -> None:
    """Faces that belong to nobody: out of every person and out of unknown, until unrejected."""
    faces = _check_faces(store, faces)
    already = [f for f in faces if f in _rejected_set(store, faces)]
    if already:
        raise CorrectionError(f"face {already[0]} is already rejected")

    def change(rec):
        for face in faces:
            rec.face(face)
            store.db.execute("DELETE FROM assignments WHERE face_id=?", (face,))
            store.db.execute("DELETE FROM confirmed WHERE face_id=?", (face,))
            store.db.execute("INSERT OR IGNORE INTO rejected VALUES (?)", (face,))

    _correction(store, "reject", {"faces": faces}, change)


def unreject_faces(store: Store, faces: list[int]) -> None:
    """Undo a rejection: the faces are unknown until the next clustering places them."""
    faces = _check_faces(store, faces)
    rejected = _rejected_set(store, faces)
    if not all(f in rejected for f in faces):
        raise CorrectionError(f"face {next(f for f in faces if f not in rejected)} is not rejected")

    def change(rec):
        for face in faces:
            _assign(rec, face, None, confirm=None)

    _correction(store, "unreject", {"faces": faces}, change)


def different_people(store: Store, a: int | str, b: int | str) -> None:
    """The user says two people are not the same: both are settled, so they stay apart."""
    ids = [resolve_person(store, a), resolve_person(store, b)]
    if ids[0] == ids[1]:
        raise CorrectionError(f"person {ids[0]} is the same person as itself")

    def change(rec):
        for person in ids:
            _settle(rec, person)

    _correction(store, "different", {"people": ids}, change)


def not_this_person(store: Store, face: int, person: int | str) -> None:
    """The user says a face is not this person: it leaves the person and never joins it again."""
    face = _check_faces(store, [face])[0]
    person_id = resolve_person(store, person)

    def change(rec):
        rec.person(person_id)
        _settle(rec, person_id)
        rec.face(face)
        if store.db.execute("SELECT 1 FROM assignments WHERE face_id=? AND person_id=?",
                            (face, person_id)).fetchone():
            _assign(rec, face, None, confirm=None)
            store.db.execute("DELETE FROM confirmed WHERE face_id=?", (face,))
        store.db.execute("INSERT OR IGNORE INTO not_person VALUES (?, ?)", (face, person_id))

    _correction(store, "not-person", {"face": face, "person": person_id}, change)


def undo(store: Store) -> dict:
    """Undo the latest correction not yet undone; returns what it was."""
    row = store.db.execute("SELECT id, action, payload, undo FROM corrections WHERE undone=0"
                           " AND undo IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise CorrectionError("nothing to undo")
    record = json.loads(row[3])
    with store.transaction():
        db = store.db
        for face, (assigned, confirmed, rejected) in record["faces"].items():
            face = int(face)
            db.execute("DELETE FROM assignments WHERE face_id=?", (face,))
            if assigned is not None:
                db.execute("INSERT INTO assignments (face_id, person_id, confidence, run_id)"
                           " VALUES (?,?,?,?)", (face, *assigned))
            db.execute("DELETE FROM confirmed WHERE face_id=?", (face,))
            if confirmed is not None:
                db.execute("INSERT INTO confirmed VALUES (?, ?, ?)", (face, *confirmed))
            db.execute("DELETE FROM rejected WHERE face_id=?", (face,))
            if rejected:
                db.execute("INSERT INTO rejected VALUES (?)", (face,))
        for person, (name, merged_into) in record["people"].items():
            db.execute("UPDATE people SET name=?, merged_into=? WHERE id=?", (name, merged_into, int(person)))
        for person, faces in record["not_person"].items():
            db.execute("DELETE FROM not_person WHERE person_id=?", (int(person),))
            db.executemany("INSERT INTO not_person VALUES (?, ?)", [(f, int(person)) for f in faces])
        for person in record["created"]:
            if not db.execute("SELECT 1 FROM assignments WHERE person_id=?", (person,)).fetchone():
                db.execute("UPDATE people SET merged_into=NULL, name=NULL WHERE id=?", (person,))
        db.execute("UPDATE corrections SET undone=1 WHERE id=?", (row[0],))
    return {"id": row[0], "action": row[1], **json.loads(row[2])}


def skip_question(store: Store, key: str) -> None:
    """Remember that the user skipped a "same person?" question (it is not asked again)."""
    store.db.execute("INSERT OR IGNORE INTO skipped VALUES (?, ?)", (key, time.time()))


def skipped_questions(store: Store) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT question FROM skipped")}


def _check_faces(store: Store, faces) -> list[int]:
    faces = list(dict.fromkeys(int(f) for f in faces))
    if not faces:
        raise CorrectionError("no faces given")
    found = {r[0] for r in store.db.execute(
        f"SELECT f.id FROM faces f JOIN media m ON m.id=f.media_id WHERE m.status='ok'"
        f" AND f.id IN ({_marks(faces)})", faces)}
    missing = [f for f in faces if f not in found]
    if missing:
        raise CorrectionError(f"no face {missing[0]} (face ids are in faces.csv and the review page)")
    return faces


def _current_people(store: Store, faces: list[int]) -> dict[int, int | None]:
    rows: dict[int, int | None] = {}
    for start in range(0, len(faces), 900):  # SQLite's limit on bound values
        chunk = faces[start:start + 900]
        rows.update(store.db.execute(f"SELECT face_id, person_id FROM assignments WHERE face_id IN"
                                     f" ({_marks(chunk)})", chunk))
    return {f: rows.get(f) for f in faces}


def _rejected_set(store: Store, faces: list[int]) -> set[int]:
    return {r[0] for r in store.db.execute(f"SELECT face_id FROM rejected WHERE face_id IN ({_marks(faces)})",
                                           faces)}


def _marks(values) -> str:
    return ",".join("?" * len(values))


# -- clustering results ---------------------------------------------------------------------------

def save_clustering(store: Store, face_ids: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                    run_id: int | None, confirmed: dict[int, int]) -> dict[int, int]:
    """Store a clustering as people, keeping ids: returns cluster label -> person id.

    A cluster holding confirmed faces is their person. Every other cluster takes the id (and
    name) of the person its faces were last in, most of them (a one-to-one matching; "last"
    reaches back past clusterings that left them unknown), or becomes a new person. Confirmed faces are in their person whatever the clusterer said;
    rejected faces (not in ``face_ids``) have no assignment at all.
    """
    mapping = _confirmed_clusters(face_ids, labels, confirmed)
    taken = set(mapping.values())
    previous = {f: p for f, p in store.db.execute(
        "SELECT l.face_id, l.person_id FROM last_person l JOIN people p ON p.id=l.person_id"
        " WHERE p.merged_into IS NULL") if p not in taken}
    free = [int(c) for c in np.unique(labels[labels >= 0]) if int(c) not in mapping]
    mapping.update(_match_previous(face_ids, labels, free, previous))
    for label in free:
        if label not in mapping:
            mapping[label] = store.new_person()
    people = [confirmed.get(int(f), mapping.get(int(l))) for f, l in zip(face_ids, labels)]
    confidence = [1.0 if int(f) in confirmed else float(c) for f, c in zip(face_ids, confidence)]
    with store.transaction():
        store.db.execute("DELETE FROM assignments")
        store.db.executemany("INSERT INTO assignments VALUES (?,?,?,?)",
                             [(int(f), p, c, run_id) for f, p, c in zip(face_ids, people, confidence)])
        store.db.executemany("INSERT OR REPLACE INTO last_person VALUES (?, ?)",
                             [(int(f), p) for f, p in zip(face_ids, people) if p is not None])
    return mapping


def _confirmed_clusters(face_ids, labels, confirmed) -> dict[int, int]:
    votes: dict[int, list[int]] = {}
    for face, label in zip(face_ids, labels):
        if label >= 0 and int(face) in confirmed:
            votes.setdefault(int(label), []).append(confirmed[int(face)])
    return {label: max(sorted(set(people)), key=people.count) for label, people in votes.items()}


def _match_previous(face_ids, labels, free: list[int], previous: dict[int, int]) -> dict[int, int]:
    """Cluster label -> previous person: a one-to-one matching of the ``free`` clusters to the
    people their faces were last in that keeps the most faces where they were.

    The overlap is sparse (a cluster meets few previous people), so the matching is solved on
    each connected part of the cluster-person overlap graph on its own: the same optimum as one
    matching of every cluster to every person, without a clusters x people matrix.
    """
    if not free or not previous:
        return {}
    faces = np.asarray(face_ids, np.int64)
    labels = np.asarray(labels, np.int64)
    was = np.fromiter(previous.keys(), np.int64, len(previous))
    person = np.fromiter(previous.values(), np.int64, len(previous))
    order = np.argsort(was)
    at = np.minimum(np.searchsorted(was[order], faces), len(was) - 1)
    known = (was[order][at] == faces) & np.isin(labels, np.asarray(free, np.int64))
    if not known.any():
        return {}
    pairs, overlap = np.unique(np.stack([labels[known], person[order][at][known]], axis=1), axis=0,
                               return_counts=True)
    rows, row_of = np.unique(pairs[:, 0], return_inverse=True)
    cols, col_of = np.unique(pairs[:, 1], return_inverse=True)
    row_of, col_of = row_of.ravel(), col_of.ravel()
    graph = coo_matrix((np.ones(len(pairs)), (row_of, len(rows) + col_of)),
                       shape=(len(rows) + len(cols),) * 2)
    part = connected_components(graph, directed=False)[1]
    mapping: dict[int, int] = {}
    for component in np.unique(part[row_of]):
        edges = np.flatnonzero(part[row_of] == component)
        r, r_of = np.unique(row_of[edges], return_inverse=True)
        c, c_of = np.unique(col_of[edges], return_inverse=True)
        matrix = np.zeros((len(r), len(c)))
        matrix[r_of.ravel(), c_of.ravel()] = overlap[edges]
        for i, j in zip(*linear_sum_assignment(-matrix)):
            if matrix[i, j] > 0:
                mapping[int(rows[r[i]])] = int(cols[c[j]])
    return mapping


def save_increment(store: Store, face_ids, people, groups, confidence, run_id: int | None) -> dict[int, int]:
    """Store an incremental clustering: faces that join existing people, and new people.

    Only the faces given are written, and only those that are in no person now (new, or
    unknown; a face the user put in a person meanwhile is left there): no face of an existing
    person moves and no person's id changes.

    Parameters
    ----------
    face_ids : array of face ids
    people : array
        Person id each face joins (an existing person, or its confirmed one), -1 for none.
    groups : array
        For faces that join no existing person: a new person label (0, 1, ...), -1 for unknown.
    confidence : array
        Membership confidence of each face.

    Returns
    -------
    dict
        Group label -> person id. A group takes the id (and name) of the person its faces were
        last in when that person has no faces now (its photos came back), else a new id.
    """
    with store.transaction():  # all or nothing, new people included
        # a face put in a person meanwhile (the review app is open) stays where the user put it
        free = np.array([p is None for p in _current_people(store, [int(f) for f in face_ids]).values()], bool)
        faces = [int(f) for f in np.asarray(face_ids)[free]]
        people = np.asarray(people, np.int64)[free]
        groups = np.asarray(groups, np.int64)[free]
        confidence = np.asarray(confidence, np.float64)[free]
        labels = [int(g) for g in np.unique(groups[groups >= 0])]
        empty = {r[0] for r in store.db.execute(
            "SELECT p.id FROM people p WHERE p.merged_into IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM assignments a WHERE a.person_id=p.id)")}
        previous = {f: p for f, p in _last_people(store, faces).items() if p in empty}
        mapping = _match_previous(faces, groups, labels, previous)
        for label in labels:
            if label not in mapping:
                mapping[label] = store.new_person()
        chosen = [int(p) if p >= 0 else mapping.get(int(g)) for p, g in zip(people, groups)]
        store.db.executemany("INSERT OR REPLACE INTO assignments VALUES (?,?,?,?)",
                             [(f, p, float(c), run_id) for f, p, c in zip(faces, chosen, confidence)])
        store.db.executemany("INSERT OR REPLACE INTO last_person VALUES (?, ?)",
                             [(f, p) for f, p in zip(faces, chosen) if p is not None])
    return mapping


def _last_people(store: Store, faces: list[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for start in range(0, len(faces), 900):
        chunk = faces[start:start + 900]
        found.update(store.db.execute(f"SELECT face_id, person_id FROM last_person WHERE face_id IN"
                                      f" ({_marks(chunk)})", chunk))
    return found


# -- read-only queries for the review pages (facecluster.web) -------------------------------------

def people_counts(store: Store) -> list[tuple[int, str | None, int]]:
    """(id, name, faces) of every person with faces, in :func:`list_people`'s order, in two
    light queries (the faces of media that went missing are left out, as everywhere)."""
    rows = store.db.execute(
        "SELECT p.id, p.name, c.n FROM (SELECT person_id, COUNT(*) AS n FROM assignments"
        " WHERE person_id IS NOT NULL GROUP BY person_id) c JOIN people p ON p.id=c.person_id").fetchall()
    gone = dict(store.db.execute(
        "SELECT a.person_id, COUNT(*) FROM faces f JOIN assignments a ON a.face_id=f.id"
        " WHERE f.media_id IN (SELECT id FROM media WHERE status!='ok') AND a.person_id IS NOT NULL"
        " GROUP BY a.person_id"))
    people = [(r[0], r[1], r[2] - gone.get(r[0], 0)) for r in rows if r[2] > gone.get(r[0], 0)]
    return sorted(people, key=lambda p: (-p[2], p[0]))


def search_people(people: list[tuple[int, str | None, int]], query: str | None) -> list:
    """The entries of :func:`people_counts` whose name or ``person_0012`` label contains
    ``query`` (any case); the person whose id it is (``12``, ``person_0012``) comes first."""
    text = (query or "").strip().casefold()
    if not text:
        return people
    number = re.fullmatch(r"(?:person_)?0*(\d+)", text)
    wanted = int(number.group(1)) if number else None
    found = [p for p in people if text in (p[1] or "").casefold() or text in f"person_{p[0]:04d}"]
    return [p for p in found if p[0] == wanted] + [p for p in found if p[0] != wanted]


def people_page(store: Store, query: str | None = None, offset: int = 0, limit: int | None = None,
                counts: list | None = None) -> tuple[list[Person], int]:
    """One page of :func:`list_people` (best faces included), searched with
    :func:`search_people`, and how many people match. ``counts``: :func:`people_counts`
    already read (a cache)."""
    found = search_people(people_counts(store) if counts is None else counts, query)
    page = found[offset:None if limit is None else offset + limit]
    best = best_faces(store, [p[0] for p in page])
    return [Person(p[0], p[1], p[2], best.get(p[0])) for p in page], len(found)


def best_faces(store: Store, people: list[int]) -> dict[int, int]:
    """Person id -> best face (the first of :func:`person_faces`), in one query."""
    if not people:
        return {}
    return dict(store.db.execute(
        "SELECT person_id, face_id FROM (SELECT a.person_id, a.face_id, ROW_NUMBER() OVER"
        " (PARTITION BY a.person_id ORDER BY c.face_id IS NULL, a.confidence DESC,"
        " f.sharpness DESC, f.id) AS rank FROM assignments a JOIN faces f ON f.id=a.face_id"
        " JOIN media m ON m.id=f.media_id LEFT JOIN confirmed c ON c.face_id=a.face_id"
        f" WHERE m.status='ok' AND a.person_id IN ({_marks(people)})) WHERE rank=1", people))


def face_counts(store: Store) -> dict[str, int]:
    """Faces that are unknown and faces that are rejected (on media that are present)."""
    one = lambda query: store.db.execute(query).fetchone()[0]
    return {
        "unknown": one("SELECT COUNT(*) FROM assignments a JOIN faces f ON f.id=a.face_id"
                       " JOIN media m ON m.id=f.media_id WHERE a.person_id IS NULL AND m.status='ok'"),
        "rejected": one("SELECT COUNT(*) FROM rejected r JOIN faces f ON f.id=r.face_id"
                        " JOIN media m ON m.id=f.media_id WHERE m.status='ok'"),
    }


def person_photo_count(store: Store, person_id: int) -> int:
    """How many photos (and videos) a person's faces come from."""
    return store.db.execute("SELECT COUNT(DISTINCT f.media_id) FROM assignments a JOIN faces f"
                            " ON f.id=a.face_id JOIN media m ON m.id=f.media_id"
                            " WHERE a.person_id=? AND m.status='ok'", (person_id,)).fetchone()[0]


def person_exists(store: Store, person_id: int) -> int | None:
    """The live person an id stands for (following merges), or None for an unknown id."""
    if store.db.execute("SELECT 1 FROM people WHERE id=?", (person_id,)).fetchone() is None:
        return None
    return _final(store, person_id)


def face_chip(store: Store, face_id: int) -> bytes | None:
    """The face's aligned chip (JPEG), or None for a face the store does not have."""
    row = store.db.execute("SELECT chip FROM faces WHERE id=?", (int(face_id),)).fetchone()
    return row[0] if row else None


def face_photo(store: Store, face_id: int) -> dict | None:
    """Where a face comes from: the media (id, path, kind, size), the frame time, and every
    face of that photo or frame with its box, person and name; None for an unknown face."""
    row = store.db.execute(
        "SELECT m.id, m.path, m.kind, m.width, m.height, f.time FROM faces f"
        " JOIN media m ON m.id=f.media_id WHERE f.id=? AND m.status='ok'", (int(face_id),)).fetchone()
    if row is None:
        return None
    faces = [{"id": r[0], "box": [r[1], r[2], r[3], r[4]], "person": r[5], "name": r[6],
              "rejected": bool(r[7])} for r in store.db.execute(
        "SELECT f.id, f.left, f.top, f.right, f.bottom, a.person_id, p.name, r.face_id IS NOT NULL"
        " FROM faces f LEFT JOIN assignments a ON a.face_id=f.id LEFT JOIN people p ON p.id=a.person_id"
        " LEFT JOIN rejected r ON r.face_id=f.id WHERE f.media_id=? AND f.time IS ? ORDER BY f.left",
        (row[0], row[5]))]
    return {"media": row[0], "path": row[1], "kind": row[2], "width": row[3], "height": row[4],
            "time": row[5], "faces": faces}


def media_file(store: Store, media_id: int) -> tuple[str | bytes, str] | None:
    """(path, kind) of a media the store knows and that is present; None otherwise."""
    row = store.db.execute("SELECT path, kind FROM media WHERE id=? AND status='ok'",
                           (int(media_id),)).fetchone()
    return (row[0], row[1]) if row else None


def face_embeddings(store: Store, face_ids: list[int]) -> np.ndarray:
    """The embeddings of these faces, in this order (rows of zeros for unknown ids)."""
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(face_ids), 900):
        chunk = [int(f) for f in face_ids[start:start + 900]]
        found.update((r[0], np.frombuffer(r[1], np.float32)) for r in store.db.execute(
            f"SELECT id, embedding FROM faces WHERE id IN ({_marks(chunk)})", chunk))
    size = len(next(iter(found.values()))) if found else 128
    return np.stack([found.get(int(f), np.zeros(size, np.float32)) for f in face_ids]) \
        if face_ids else np.zeros((0, size), np.float32)


def undoable(store: Store) -> dict | None:
    """The correction :func:`undo` would undo now (as :func:`history` shows it), or None."""
    row = store.db.execute("SELECT id, created, action, payload FROM corrections WHERE undone=0"
                           " AND undo IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else {"id": row[0], "created": row[1], "action": row[2],
                                     **json.loads(row[3])}
