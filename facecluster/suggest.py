"""The "same person?" queue: the questions whose answers would fix the most, best first.

Two kinds of question:

* ``people:A:B``: is person B the same as person A? (one person split in two by the
  clustering). Yes merges B into A, no keeps them apart for good.
* ``face:F:A``: is face F person A? A is either another person (F is unknown, or fits A about
  as well as the person it is in) or F's *own* person ("is this face really person A?", for a
  face that fits its person badly). Yes moves F to A, or, when F is already in A, confirms it
  there; no means F never joins A (and leaves A if it is in A: it becomes unknown, and later
  questions may ask which other person it is).

How likely a "yes" is comes from this collection's own distances, not from a fixed threshold
(dlib's model puts some populations' faces much closer together than others):

1. Faces are compared in the clusterer's centred space (the collection's mean face removed
   and re-normalised), which measures what tells these faces apart.
2. A face or a person is compared with a person by the *RMS distance between their faces*,
   ``r(A, B)² = |mean(A) - mean(B)|² + spread(A) + spread(B)``, ``spread`` being the mean
   squared distance of a person's faces to its mean (0 for one face): the measure the
   clusterer's own merge step uses. A face is compared with the *rest* of its own person.
3. The collection calibrates ``r``: each face against the rest of its own person gives the
   "same person" distances, each face against its nearest other person the "different
   people" distances. A logistic density for each (median; scale from the median absolute
   deviation, pooled) gives a log likelihood ratio ``L(r)``: decreasing in ``r``, and bounded,
   because those densities have heavier tails than normal ones, so no distance makes an answer
   certain. Pairs of people use the same ``L``: ``r(A, B)²`` is the mean of ``r(b, A)²`` over
   the faces ``b`` of B, i.e. a typical face of B against A.
4. A pair of people: ``p = sigmoid(L(r(A, B)))``. A face F: with ``odds = exp(L)``, F is its
   own person O, one of the nearest people P it can still be, or nobody's:
   ``p(A) = odds(A) / (w + odds(O) + sum of odds(P))`` for A = O or one of the P. ``w``, the
   prior odds of "nobody" against one given person, is the collection's own ratio of unknown
   faces to faces in people (one of each added): where the clustering placed nearly every
   face, a face that fits its person badly is more likely someone else than a stranger. A
   person F cannot be (the user said no, or another face of F's photo is in that person)
   leaves the sum *before* the nearest are chosen, so after a "no" the next nearest person
   comes in and the others become likelier: face questions range over every person, nearest
   first.

The ranking is the *expected BCubed gain* of the answer: the probability of the answer that
changes something times how much BCubed precision plus recall (summed over faces) that change
adds, people taken to be otherwise right (sizes a, b):

* people A, B: ``p * 2ab / (a + b)`` (a yes joins a·b pairs of faces on each side);
* face F in A (``a`` faces with F) against another person B (``b`` faces):
  ``p(B) * (leave(a) + 2b / (b + 1))``, ``leave(a) = 2 (a - 1) / a`` being what F leaving a
  person it is not adds (0 for an unknown face);
* face F against its own person A: ``(1 - p(A)) * leave(a)``: a "no" takes it out.

A "no" to another person, or a "yes" about a face's own person, changes nothing that BCubed
sees (it keeps the collection right against later clustering). Each face gets one question
at a time, its most valuable; a person of one face is asked about as that face (against every
person it may be), not as a pair of people.

Never asked: two settled people (clustering keeps them apart already), people with faces in
one photo, a face and a person the user said it is not, faces the user put in a person or
confirmed themselves (``confirmed.explicit``), and skipped questions. A face confirmed only
because an answer about its person settled that person *is* still asked about, also whether
it is that person: the user has not looked at it, and otherwise one answer about a person would
freeze all its mistakes (docs/review.md measures both).

>>> with Store("faces.db") as store:                                  # doctest: +SKIP
...     for question in suggest(store, limit=5):
...         print(question.id, round(question.probability, 2))
...     answer(store, "people:12:31", "yes")
'merged person 31 into person 12'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from facecluster.cluster._graph import centred
from facecluster.store import Store
from facecluster.store import people as people_api
from facecluster.store.people import CorrectionError

EXAMPLES = 6  # example faces shown per person
NEIGHBOURS = 3  # nearest other people (that a face can still be) considered per face and per person
CHUNK = 2048  # rows of a face-to-people distance matrix computed at once (bounds memory only)
REPLIES = ("yes", "no", "skip")
PEOPLE, FACE, OWN = 0, 1, 2  # candidate kinds (OWN: a face against its own person, a "face" question)


@dataclass
class Question:
    """One "same person?" question.

    Attributes
    ----------
    id : str
        ``"people:A:B"`` (is person B the same as person A?) or ``"face:F:A"`` (is face F
        person A?). The same question keeps its id from one call to the next.
    kind : str
        ``"people"`` or ``"face"``.
    person : int
        Person A. For ``"face"``: the person the face might be, which may be the person the
        face is in now ("is face F really person A?"; yes confirms it there, no takes it out).
    other : int
        Person B for ``"people"``, the face id F for ``"face"``.
    probability : float
        Estimated probability that the answer is yes.
    value : float
        Ranking score (higher first): the expected BCubed gain of the answer, in faces.
    faces : list of int
        Up to 6 example faces of person A, best first (never face F itself).
    other_faces : list of int
        Up to 6 example faces of person B, best first, or ``[face id]``.
    """

    id: str
    kind: str
    person: int
    other: int
    probability: float
    value: float
    faces: list[int]
    other_faces: list[int]


# -- public API -----------------------------------------------------------------------------

def suggest(store: Store, limit: int = 20, order: str = "value") -> list[Question]:
    """The next questions to ask, most useful first.

    Parameters
    ----------
    store : Store
        The store; the queue is recomputed from it, so it follows every answer and correction.
    limit : int
        At most this many questions.
    order : {"value", "distance"}
        ``"value"``: the queue. ``"distance"``: the naive baseline that ``benchmarks/review.py``
        compares with: people pairs and faces against other people, closest first by raw
        embedding distance (no questions about a face's own person: "closest first" has no
        meaning for them).

    Returns
    -------
    list of Question
    """
    if order not in ("value", "distance"):
        raise ValueError(f"order must be 'value' or 'distance', not {order!r}")
    state = _read(store)
    impossible = _impossible_pairs(state)
    nearest, rms = _nearest_people(state.means, state.spread, state.Z, np.zeros(len(state.faces)),
                                   state.member, impossible)
    own_rms = _own_rms(state)
    log_odds = _calibrate(state, own_rms, rms)
    if log_odds is None:  # too few people, or nothing tells them apart
        return []
    found = _Candidates.join(_people_candidates(state, log_odds),
                             _face_candidates(state, log_odds, own_rms, nearest, rms, own=order == "value"))
    return [_question(store, found, i) for i in found.ranked(order)[:max(int(limit), 0)]]


def answer(store: Store, question_id: str, reply: str) -> str:
    """Answer a question: the answer becomes a correction, undone by ``people.undo``.

    * people yes: :func:`~facecluster.store.people.merge_people` ``([A, B])``. A keeps its id:
      the queue names first a person with a name, else the larger one, else the older one, so
      the folder the user knows stays; B's name is kept if A has none.
    * people no: :func:`~facecluster.store.people.different_people` ``(A, B)``.
    * face yes: :func:`~facecluster.store.people.move_faces` ``([F], A)``, or, when F is in A
      already, :func:`~facecluster.store.people.confirm_faces` ``([F])``.
    * face no: :func:`~facecluster.store.people.not_this_person` ``(F, A)`` (F leaves A if it
      is in A, and becomes unknown).
    * skip: not asked again (this is not a correction and is not undone).

    Parameters
    ----------
    store : Store
    question_id : str
        A question's ``id``, e.g. ``"people:12:31"`` or ``"face:804:12"``.
    reply : str
        ``"yes"``, ``"no"`` or ``"skip"`` (any case).

    Returns
    -------
    str
        One sentence saying what was done.

    Raises
    ------
    CorrectionError
        An unknown or out-of-date question, or another reply; nothing was changed.
    """
    reply = str(reply).strip().lower()
    if reply not in REPLIES:
        raise CorrectionError(f"the reply must be yes, no or skip, not {reply!r}")
    kind, first, second = _parse(question_id)
    if kind == "people":
        _check_people(store, first, second)
        return _answer_people(store, first, second, reply)
    _check_face(store, first, second)
    return _answer_face(store, first, second, reply)


# -- answers --------------------------------------------------------------------------------

def _parse(question_id: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"\s*(people|face):(\d+):(\d+)\s*", str(question_id))
    if not match:
        raise CorrectionError(f"{question_id!r} is not a question id (like people:12:31 or face:804:12;"
                              " see `facecluster suggest`)")
    return match.group(1), int(match.group(2)), int(match.group(3))


def _answer_people(store: Store, a: int, b: int, reply: str) -> str:
    if reply == "yes":
        people_api.merge_people(store, [a, b])
        return f"merged person {b} into person {a}"
    if reply == "no":
        people_api.different_people(store, a, b)
        return f"person {a} and person {b} are kept apart"
    people_api.skip_question(store, f"people:{a}:{b}")
    return f"skipped people:{a}:{b}; it will not be asked again"


def _answer_face(store: Store, face: int, person: int, reply: str) -> str:
    inside = _face_in(store, face, person)
    if reply == "yes":
        if inside:
            people_api.confirm_faces(store, [face])
            return f"confirmed face {face} in person {person}"
        people_api.move_faces(store, [face], person)
        return f"moved face {face} to person {person}"
    if reply == "no":
        people_api.not_this_person(store, face, person)
        if inside:
            return f"took face {face} out of person {person}; it will not join person {person} again"
        return f"face {face} will not join person {person}"
    people_api.skip_question(store, f"face:{face}:{person}")
    return f"skipped face:{face}:{person}; it will not be asked again"


def _face_in(store: Store, face: int, person: int) -> bool:
    return store.db.execute("SELECT 1 FROM assignments WHERE face_id=? AND person_id=?",
                            (face, person)).fetchone() is not None


def _stale(question: str, why: str) -> CorrectionError:
    return CorrectionError(f"question {question} is out of date: {why} (see `facecluster suggest`)")


def _live(store: Store, person: int, question: str) -> None:
    try:
        people_api.resolve_person(store, person)
    except CorrectionError as error:
        raise _stale(question, str(error).split(" (")[0]) from None
    if not store.db.execute("SELECT 1 FROM assignments WHERE person_id=? LIMIT 1", (person,)).fetchone():
        raise _stale(question, f"person {person} has no faces")


def _check_people(store: Store, a: int, b: int) -> None:
    question = f"people:{a}:{b}"
    if a == b:
        raise CorrectionError(f"{question} is not a question: a person is the same as itself")
    _live(store, a, question)
    _live(store, b, question)
    settled = {r[0] for r in store.db.execute(
        "SELECT DISTINCT person_id FROM confirmed WHERE person_id IN (?, ?)", (a, b))}
    if settled == {a, b}:
        raise _stale(question, f"you already keep person {a} and person {b} apart")
    if {question, f"people:{b}:{a}"} & people_api.skipped_questions(store):
        raise _stale(question, "you skipped it")


def _check_face(store: Store, face: int, person: int) -> None:
    question = f"face:{face}:{person}"
    if not store.db.execute("SELECT 1 FROM faces f JOIN media m ON m.id=f.media_id"
                            " WHERE f.id=? AND m.status='ok'", (face,)).fetchone():
        raise _stale(question, f"there is no face {face}")
    if store.db.execute("SELECT 1 FROM rejected WHERE face_id=?", (face,)).fetchone():
        raise _stale(question, f"face {face} is rejected")
    _live(store, person, question)
    placed = store.db.execute("SELECT person_id FROM confirmed WHERE face_id=? AND explicit=1",
                              (face,)).fetchone()
    if placed:
        raise _stale(question, f"you put face {face} in person {placed[0]} yourself")
    if (face, person) in _not_person(store):
        raise _stale(question, f"you said face {face} is not person {person}")
    if question in people_api.skipped_questions(store):
        raise _stale(question, "you skipped it")


def _placed_by_user(store: Store) -> set[int]:
    """Faces the user put in their person themselves (moved, split off, confirmed)."""
    return {r[0] for r in store.db.execute("SELECT face_id FROM confirmed WHERE explicit=1")}


# -- what the ranking reads -------------------------------------------------------------------

@dataclass
class _State:
    """The collection as the ranking sees it, read from the store in one go."""

    faces: np.ndarray  # face ids: present and not rejected
    X: np.ndarray  # raw embeddings (for the naive baseline)
    Z: np.ndarray  # centred embeddings
    member: np.ndarray  # person index per face, -1: unknown
    frame: np.ndarray  # photo (or video frame) index per face
    people: np.ndarray  # person id per person index, ascending
    sizes: np.ndarray
    means: np.ndarray
    spread: np.ndarray  # mean squared distance of a person's faces to its mean
    named: np.ndarray  # bool per person index
    settled: np.ndarray  # bool per person index: the user has acted on this person
    placed: np.ndarray  # bool per face: the user put it in its person (or confirmed it there)
    not_person: set  # (face id, person id): the user said no
    skipped: set  # question ids


def _read(store: Store) -> _State:
    ids, media, X = store.embeddings()
    rejected = [r[0] for r in store.db.execute("SELECT face_id FROM rejected")]
    keep = ~np.isin(ids, rejected)
    ids, media, X = ids[keep], media[keep], X[keep].astype(np.float64)
    assigned = store.assignments()
    person_of = np.array([-1 if (p := assigned.get(int(f), (None,))[0]) is None else p for f in ids],
                         np.int64)
    people = np.unique(person_of[person_of >= 0])
    member = np.where(person_of >= 0, np.searchsorted(people, person_of), -1)
    times = store.times_and_tracks()
    frames: dict = {}
    frame = np.array([frames.setdefault((int(m), times.get(int(f), (None,))[0]), len(frames))
                      for f, m in zip(ids, media)], np.int64)
    Z = centred(X) if len(X) else X
    sizes, means, spread = _person_stats(Z, member, len(people))
    names = store.people()
    settled = [r[0] for r in store.db.execute("SELECT DISTINCT person_id FROM confirmed")]
    return _State(
        faces=ids, X=X, Z=Z, member=member, frame=frame, people=people, sizes=sizes, means=means,
        spread=spread, named=np.array([names.get(int(p)) is not None for p in people], bool),
        settled=np.isin(people, settled), placed=np.isin(ids, list(_placed_by_user(store))),
        not_person=_not_person(store), skipped=people_api.skipped_questions(store))


def _not_person(store: Store) -> set[tuple[int, int]]:
    """(face, person) pairs the user said no to, the person followed through later merges."""
    merged = dict(store.db.execute("SELECT id, merged_into FROM people WHERE merged_into IS NOT NULL"))

    def final(person: int) -> int:
        seen = set()
        while person in merged and person not in seen:
            seen.add(person)
            person = merged[person]
        return person

    rows = store.db.execute("SELECT face_id, person_id FROM not_person")
    return {(face, final(person)) for face, person in rows}


def _person_stats(Z: np.ndarray, member: np.ndarray, count: int):
    """Sizes, means and spreads (mean squared distance to the mean) of the people."""
    inside = np.flatnonzero(member >= 0)
    one_hot = csr_matrix((np.ones(len(inside)), (member[inside], inside)), shape=(count, len(Z)))
    sizes = np.asarray(one_hot.sum(axis=1)).ravel()
    means = (one_hot @ Z) / np.maximum(sizes, 1)[:, None]
    squared = ((Z[inside] - means[member[inside]]) ** 2).sum(axis=1)
    spread = np.bincount(member[inside], squared, minlength=count) / np.maximum(sizes, 1)
    return sizes, means, spread


def _own_rms(state: _State) -> np.ndarray:
    """Each face's RMS distance to the *rest* of its person (NaN: unknown, or alone).

    Leave-one-out in closed form: the rest's mean is ``(n m - z) / (n - 1)``, so the face is
    ``n / (n - 1)`` times farther from it than from ``m``; the rest's summed squared spread is
    the person's less ``n / (n - 1)`` times the face's squared distance to ``m``.
    """
    rms = np.full(len(state.faces), np.nan)
    inside = np.flatnonzero(state.member >= 0)
    person = state.member[inside]
    n = state.sizes[person]
    squared = ((state.Z[inside] - state.means[person]) ** 2).sum(axis=1)
    alone = n < 2
    n = np.where(alone, 2, n)  # any value: the result is dropped
    to_rest = squared * (n / (n - 1)) ** 2
    rest_spread = (n * state.spread[person] - squared * n / (n - 1)) / (n - 1)
    rms[inside] = np.where(alone, np.nan, np.sqrt(np.maximum(to_rest + rest_spread, 0)))
    return rms


def _impossible_pairs(state: _State) -> tuple[np.ndarray, np.ndarray]:
    """(face index, person index) pairs a face cannot be: the user said no, or another face of
    its photo (or video frame) is in that person. Sorted by face index."""
    position = {int(p): i for i, p in enumerate(state.people)}
    row_of = {int(f): i for i, f in enumerate(state.faces)}
    pairs = {(row_of[f], position[p]) for f, p in state.not_person if f in row_of and p in position}
    inside = np.flatnonzero(state.member >= 0)
    counts = np.bincount(state.frame, minlength=int(state.frame.max()) + 1 if len(state.frame) else 0)
    shared = np.flatnonzero(counts[state.frame] > 1)
    if len(shared) and len(inside):
        order = shared[np.argsort(state.frame[shared], kind="stable")]
        for group in np.split(order, np.flatnonzero(np.diff(state.frame[order])) + 1):
            for face in group:
                pairs.update((int(face), int(state.member[other])) for other in group
                             if other != face and state.member[other] >= 0)
    if not pairs:
        return np.zeros(0, int), np.zeros(0, int)
    found = np.array(sorted(pairs), np.int64)
    return found[:, 0], found[:, 1]


def _nearest_people(means: np.ndarray, spread: np.ndarray, rows: np.ndarray, row_spread: np.ndarray,
                    exclude: np.ndarray, impossible: tuple[np.ndarray, np.ndarray] | None = None,
                    k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` people (of ``means`` and ``spread``, one row each) at the smallest RMS
    distance from each row (a face, or a person).

    Returns (person indices, RMS distances), both of shape (len(rows), k'), k' <= k, nearest
    first; person ``exclude[i]`` (or none, -1) is left out for row ``i``, and so are the
    ``impossible`` (row index, person index) pairs, sorted by row (the distance is infinite
    where fewer than k' people are left). Computed in chunks of rows, so memory stays bounded
    whatever the collection's size.
    """
    k = min(k, len(means))
    if k <= 0 or not len(rows):
        return np.zeros((len(rows), 0), int), np.zeros((len(rows), 0))
    ruled_rows, ruled_people = impossible if impossible is not None else (np.zeros(0, int),) * 2
    column_part = ((means ** 2).sum(axis=1) + spread).astype(np.float32)
    row_part = (rows ** 2).sum(axis=1) + row_spread
    means, rows = means.T.astype(np.float32), rows.astype(np.float32)  # single precision: 2x faster
    found, distances = [], []
    for start in range(0, len(rows), CHUNK):
        stop = min(start + CHUNK, len(rows))
        # the row's own part is the same along a row, so it is added only to the k kept
        squared = column_part - 2 * rows[start:stop] @ means
        own = exclude[start:stop]
        squared[np.flatnonzero(own >= 0), own[own >= 0]] = np.inf
        first, last = np.searchsorted(ruled_rows, [start, stop])
        squared[ruled_rows[first:last] - start, ruled_people[first:last]] = np.inf
        nearest, picked = np.zeros((stop - start, k), int), np.zeros((stop - start, k))
        block = np.arange(stop - start)
        for j in range(k):  # k small: k passes of argmin are far faster than argpartition
            nearest[:, j] = squared.argmin(axis=1)
            picked[:, j] = squared[block, nearest[:, j]]
            squared[block, nearest[:, j]] = np.inf
        found.append(nearest)
        distances.append(np.sqrt(np.maximum(picked + row_part[start:stop, None], 0)))
    return np.vstack(found), np.vstack(distances)


# -- how likely a yes is ----------------------------------------------------------------------

@dataclass
class _LogOdds:
    """Log likelihood ratio of "same person" against "different people" at RMS distance r.

    Each sample is modelled by a logistic density (median; scale from the median absolute
    deviation, pooled): heavier-tailed than a normal one, so the ratio is monotone and
    bounded by how far apart the two samples lie, and no distance makes an answer certain.
    """

    same: float
    different: float
    scale: float

    @classmethod
    def fit(cls, same: np.ndarray, different: np.ndarray) -> _LogOdds | None:
        """None when the samples cannot tell same from different."""
        same, different = same[np.isfinite(same)], different[np.isfinite(different)]
        if len(same) < 2 or len(different) < 2:
            return None
        fitted = cls(float(np.median(same)), float(np.median(different)),
                     float(np.sqrt((_logistic_scale(same) ** 2 + _logistic_scale(different) ** 2) / 2)))
        if fitted.different <= fitted.same or fitted.scale <= 0:
            return None
        return fitted

    def __call__(self, r) -> np.ndarray:
        r = np.asarray(r, float)
        return _log_logistic(r, self.same, self.scale) - _log_logistic(r, self.different, self.scale)

    def odds(self, r) -> np.ndarray:
        """exp(log odds); 0 at an infinite or unknown distance (no such person)."""
        r = np.asarray(r, float)
        finite = np.isfinite(r)
        odds = np.zeros(r.shape)
        odds[finite] = np.exp(np.clip(self(r[finite]), -50, 50))
        return odds


def _log_logistic(r: np.ndarray, location: float, scale: float) -> np.ndarray:
    """Log density of the logistic distribution, up to the constant -log(scale)."""
    u = (r - location) / scale
    return -u - 2 * np.logaddexp(0, -u)


def _logistic_scale(values: np.ndarray) -> float:
    """The logistic distribution's scale from the median absolute deviation (MAD = s ln 3)."""
    return float(np.median(np.abs(values - np.median(values)))) / np.log(3)


def _sigmoid(x) -> np.ndarray:
    return 0.5 * (1 + np.tanh(np.asarray(x, float) / 2))


# -- what an answer is worth (expected BCubed gain, in faces) -----------------------------------

def _join(a, b) -> np.ndarray:
    """BCubed recall gained (summed over faces) when two right groups of ``a`` and ``b`` faces
    of one identity become one person: each face of A finds b more, each face of B a more."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return 2 * a * b / np.maximum(a + b, 1)


def _leave(a) -> np.ndarray:
    """BCubed precision gained (summed over faces) when a face that is not its person's
    identity leaves a person of ``a`` faces (itself included): it and each of the others gain
    (a - 1) / a and 1 / a. 0 for an unknown face (a = 0)."""
    a = np.asarray(a, float)
    return np.where(a > 1, 2 * (a - 1) / np.maximum(a, 1), 0.0)


# -- candidates -------------------------------------------------------------------------------

@dataclass
class _Candidates:
    """Questions as columns, so that thousands are ranked without a Python loop."""

    kind: np.ndarray  # PEOPLE, FACE or OWN
    person: np.ndarray  # person id A
    other: np.ndarray  # person id B, or face id
    probability: np.ndarray
    value: np.ndarray
    distance: np.ndarray  # raw embedding distance, for the naive ranking

    @classmethod
    def join(cls, *parts: _Candidates) -> _Candidates:
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("kind", "person", "other", "probability", "value", "distance")))

    def ranked(self, order: str) -> np.ndarray:
        """Row indices, best first; ties broken by kind and ids, so the order is stable."""
        if order == "distance":
            return np.lexsort((self.other, self.person, self.kind, self.distance))
        return np.lexsort((self.other, self.person, self.kind, -self.probability, -self.value))


def _question(store: Store, found: _Candidates, i: int) -> Question:
    person, other = int(found.person[i]), int(found.other[i])
    kind = "people" if found.kind[i] == PEOPLE else "face"
    first = f"people:{person}:{other}" if kind == "people" else f"face:{other}:{person}"
    examples = people_api.person_faces(store, person, limit=EXAMPLES + 1)
    return Question(id=first, kind=kind, person=person, other=other,
                    probability=float(found.probability[i]), value=float(found.value[i]),
                    faces=[f for f in examples if kind == "people" or f != other][:EXAMPLES],
                    other_faces=(people_api.person_faces(store, other, limit=EXAMPLES)
                                 if kind == "people" else [other]))


def _people_candidates(state: _State, log_odds: _LogOdds) -> _Candidates:
    """Each person of two or more faces against its nearest other such people; each pair once.
    (A person of one face is asked about as that face, against every person it may be.)"""
    several = np.flatnonzero(state.sizes >= 2)
    count = len(state.people)
    if len(several) < 2:
        return _Candidates(*(np.zeros(0, t) for t in (int, int, int, float, float, float)))
    means, spread = state.means[several], state.spread[several]
    nearest, rms = _nearest_people(means, spread, means, spread, np.arange(len(several)))
    a, b, r = np.repeat(several, nearest.shape[1]), several[nearest.ravel()], rms.ravel()
    real = np.isfinite(r)  # fewer other people than neighbours asked for
    a, b, r = a[real], b[real], r[real]
    low, high = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(low * count + high, return_index=True)
    low, high, r = low[first], high[first], r[first]
    ruled_out = (state.settled[low] & state.settled[high]) | np.isin(
        low * count + high, _pair_keys(state, _people_in_one_photo(state) | _skipped_people(state)))
    low, high, r = low[~ruled_out], high[~ruled_out], r[~ruled_out]
    keeper = _keeper_rank(state)
    a = np.where(keeper[low] >= keeper[high], low, high)
    b = np.where(a == low, high, low)
    probability = _sigmoid(log_odds(r))
    raw = _raw_means(state)
    return _Candidates(np.full(len(a), PEOPLE), state.people[a], state.people[b], probability,
                       probability * _join(state.sizes[a], state.sizes[b]),
                       np.linalg.norm(raw[a] - raw[b], axis=1) if len(a) else np.zeros(0))


def _keeper_rank(state: _State) -> np.ndarray:
    """Per person index, higher keeps its id on a merge: named, then larger, then older."""
    order = np.lexsort((-state.people, state.sizes, state.named))
    rank = np.empty(len(order), int)
    rank[order] = np.arange(len(order))
    return rank


def _people_in_one_photo(state: _State) -> set[tuple[int, int]]:
    """Pairs of person indices with faces in one photo or frame: never one person."""
    inside = np.flatnonzero(state.member >= 0)
    shared = np.bincount(state.frame[inside])[state.frame[inside]] > 1
    inside = inside[shared]
    order = inside[np.argsort(state.frame[inside], kind="stable")]
    pairs = set()
    for group in np.split(order, np.flatnonzero(np.diff(state.frame[order])) + 1):
        if len(group) > 1:
            people = sorted(set(state.member[group].tolist()))
            pairs.update((a, b) for i, a in enumerate(people) for b in people[i + 1:])
    return pairs


def _skipped_people(state: _State) -> set[tuple[int, int]]:
    """Skipped people questions as pairs of person indices (either order)."""
    position = {int(p): i for i, p in enumerate(state.people)}
    pairs = set()
    for key in state.skipped:
        match = re.fullmatch(r"people:(\d+):(\d+)", key)
        if match and int(match.group(1)) in position and int(match.group(2)) in position:
            a, b = position[int(match.group(1))], position[int(match.group(2))]
            pairs.add((min(a, b), max(a, b)))
    return pairs


def _pair_keys(state: _State, pairs: set[tuple[int, int]]) -> np.ndarray:
    return np.array([a * len(state.people) + b for a, b in pairs], np.int64)


def _calibrate(state: _State, own_rms: np.ndarray, nearest_rms: np.ndarray) -> _LogOdds | None:
    """"Same person" are faces against the rest of their person, "different people" faces
    against their nearest other person they can be (with a single person: its unknown faces)."""
    if not nearest_rms.shape[1]:
        return None
    source = state.member >= 0 if len(state.people) >= 2 else state.member < 0
    return _LogOdds.fit(own_rms, nearest_rms[source, 0])


def _face_candidates(state: _State, log_odds: _LogOdds, own_rms: np.ndarray, nearest: np.ndarray,
                     rms: np.ndarray, own: bool = True) -> _Candidates:
    """Per face the user has not placed, its most valuable question: against one of the
    nearest people it can still be (``nearest``, ``rms``: from :func:`_nearest_people`), or,
    with ``own``, against its own person (``own_rms``: from :func:`_own_rms`)."""
    odds = log_odds.odds(rms)
    own_odds = log_odds.odds(np.where(np.isnan(own_rms), np.inf, own_rms))
    total = _nobody_odds(state) + own_odds + odds.sum(axis=1)
    probability = odds / total[:, None]
    size = np.where(state.member >= 0, state.sizes[np.maximum(state.member, 0)], 0)
    value = probability * (_leave(size)[:, None] + _join(1, state.sizes[nearest]))
    askable = (odds > 0) & ~_face_pairs_in(state, nearest, _skipped_faces(state)) & ~state.placed[:, None]
    value = np.where(askable, value, -1.0)
    best = np.argmax(value, axis=1)
    rows = np.arange(len(state.faces))
    best_value, best_person, best_p = value[rows, best], nearest[rows, best], probability[rows, best]
    kind = np.full(len(rows), FACE)
    if own:
        p_own = own_odds / total
        own_value = (1 - p_own) * _leave(size)
        own_askable = (size >= 2) & ~state.placed & ~_face_pairs_in(
            state, np.maximum(state.member, 0)[:, None], _skipped_faces(state))[:, 0]
        own_value = np.where(own_askable, own_value, -1.0)
        ask_own = own_value > best_value
        kind = np.where(ask_own, OWN, FACE)
        best_value = np.where(ask_own, own_value, best_value)
        best_person = np.where(ask_own, state.member, best_person)
        best_p = np.where(ask_own, p_own, best_p)
    keep = best_value > 0
    rows, person = rows[keep], best_person[keep]
    distance = np.linalg.norm(state.X[rows] - _raw_means(state)[person], axis=1)
    return _Candidates(kind[keep], state.people[person], state.faces[rows], best_p[keep],
                       best_value[keep], distance)


def _nobody_odds(state: _State) -> float:
    """Prior odds that a face is nobody's (a stranger, or no face) against its being one given
    person: the collection's own ratio of unknown faces to faces in people (with one of each
    added, so that it is never 0 or infinite). Where the clustering placed nearly every face,
    "nobody" is a poor explanation of a face that fits its person badly; where many faces are
    strangers, it is a good one."""
    unknown = int((state.member < 0).sum())
    return (unknown + 1) / (len(state.faces) - unknown + 1)


def _skipped_faces(state: _State) -> set[tuple[int, int]]:
    matches = (re.fullmatch(r"face:(\d+):(\d+)", key) for key in state.skipped)
    return {(int(m.group(1)), int(m.group(2))) for m in matches if m}


def _face_pairs_in(state: _State, nearest: np.ndarray, pairs: set[tuple[int, int]]) -> np.ndarray:
    """Whether each (face, candidate person) is one of ``pairs`` of (face id, person id)."""
    if not pairs or not len(state.people):
        return np.zeros(nearest.shape, bool)
    known = np.array(sorted(pairs), np.int64)
    base = max(int(known[:, 1].max()), int(state.people.max())) + 1
    keys = state.faces[:, None].astype(np.int64) * base + state.people[nearest]
    return np.isin(keys, known[:, 0] * base + known[:, 1])


def _raw_means(state: _State) -> np.ndarray:
    """Each person's mean in the raw embedding space."""
    return _person_stats(state.X, state.member, len(state.people))[1]
