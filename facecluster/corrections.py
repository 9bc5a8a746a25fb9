"""User corrections: name, merge, move and reject. Every one is logged and survives re-runs.

A correction changes the current result at once and is appended to the store's
``corrections`` log. Each later clustering replays the log as constraints: faces a user put in
a person stay together and keep that person's id and name, people a user kept apart stay apart,
rejected faces stay out.

>>> name_person("faces.db", 3, "Grandma")                     # doctest: +SKIP
>>> merge_people("faces.db", [3, 7])                          # doctest: +SKIP
>>> move_faces("faces.db", [120, 121], to_person=5)           # doctest: +SKIP
>>> reject_faces("faces.db", [99])                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from facecluster.store import Store


@dataclass
class Constraints:
    """What the corrections log says about the current faces."""

    confirmed: dict[int, int] = field(default_factory=dict)  # face id -> person id
    rejected: set[int] = field(default_factory=set)

    def must_link(self, face_ids: np.ndarray) -> np.ndarray:
        """Group per face: its confirmed person, or -1."""
        return np.array([self.confirmed.get(int(f), -1) for f in face_ids], dtype=np.int64)

    def apart(self, face_ids: np.ndarray) -> list[tuple[int, int]]:
        """One face pair for each pair of different confirmed people."""
        first: dict[int, int] = {}
        for i, face in enumerate(face_ids):
            person = self.confirmed.get(int(face))
            if person is not None:
                first.setdefault(person, i)
        faces = sorted(first.values())
        return [(a, b) for k, a in enumerate(faces) for b in faces[k + 1:]]


def replay(store: Store) -> Constraints:
    """Fold the corrections log, oldest first, into constraints."""
    constraints = Constraints()
    for action, payload in store.corrections():
        if action == "move":
            for face in payload["faces"]:
                constraints.confirmed[face] = payload["person"]
                constraints.rejected.discard(face)
        elif action == "merge":
            target, others = payload["people"][0], set(payload["people"][1:])
            for face in payload["faces"]:
                constraints.confirmed[face] = target
            for face, person in constraints.confirmed.items():
                if person in others:
                    constraints.confirmed[face] = target
        elif action == "reject":
            for face in payload["faces"]:
                constraints.rejected.add(face)
                constraints.confirmed.pop(face, None)
    return constraints


def name_person(db: str | os.PathLike, person: int, name: str) -> None:
    """Give ``person`` a name (shown in the report; the person's folder takes it)."""
    with Store(db) as store:
        _check_people(store, [person])
        with store.transaction():
            store.db.execute("UPDATE people SET name=? WHERE id=?", (name, person))
            store.add_correction("name", person=person, name=name)


def merge_people(db: str | os.PathLike, people: list[int]) -> int:
    """Make ``people`` one person (the first keeps its id and name); returns its id."""
    if len(people) < 2:
        raise ValueError("merge needs at least two people")
    with Store(db) as store:
        _check_people(store, people)
        faces = [f for f, (p, _) in store.assignments().items() if p in people]
        with store.transaction():
            marks = ",".join("?" * (len(people) - 1))
            store.db.execute(f"UPDATE assignments SET person_id=? WHERE person_id IN ({marks})",
                             (people[0], *people[1:]))
            store.add_correction("merge", people=list(people), faces=faces)
    return people[0]


def move_faces(db: str | os.PathLike, faces: list[int], to_person: int | None = None) -> int:
    """Put ``faces`` in ``to_person`` (a new person when None: a split); returns its id."""
    with Store(db) as store:
        _check_faces(store, faces)
        with store.transaction():
            if to_person is None:
                to_person = store.new_person()
            else:
                _check_people(store, [to_person])
            store.db.executemany("INSERT OR REPLACE INTO assignments (face_id, person_id, confidence)"
                                 " VALUES (?, ?, 1.0)", [(f, to_person) for f in faces])
            store.add_correction("move", faces=list(faces), person=to_person)
    return to_person


def reject_faces(db: str | os.PathLike, faces: list[int]) -> None:
    """Mark ``faces`` as belonging to nobody (not a face, a stranger, a poster...)."""
    with Store(db) as store:
        _check_faces(store, faces)
        with store.transaction():
            store.db.executemany("UPDATE assignments SET person_id=NULL, confidence=0 WHERE face_id=?",
                                 [(f,) for f in faces])
            store.add_correction("reject", faces=list(faces))


def _check_people(store: Store, people: list[int]) -> None:
    known = store.people()
    missing = [p for p in people if p not in known]
    if missing:
        raise ValueError(f"no person with id {missing[0]} (see `facecluster people`)")


def _check_faces(store: Store, faces: list[int]) -> None:
    marks = ",".join("?" * len(faces))
    found = {r[0] for r in store.db.execute(f"SELECT id FROM faces WHERE id IN ({marks})", faces)}
    missing = [f for f in faces if f not in found]
    if missing:
        raise ValueError(f"no face with id {missing[0]} (face ids are in faces.csv)")
