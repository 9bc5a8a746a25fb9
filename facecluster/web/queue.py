"""The "Same person?" queue as the page shows it.

:func:`facecluster.suggest.suggest` reads the whole collection, which takes seconds on a large
one. The page keeps its list of questions for the store state it was computed for; after an
answer (or the undo of one) the rest of the list stays usable at once -- the answered question
is dropped, questions about people that no longer exist are dropped -- and the queue is computed
again in the background. An answer to a question that went out of date is refused by
:func:`facecluster.suggest.answer` and the page simply asks again.
"""

from __future__ import annotations

import threading

from facecluster.store import Store

LIMIT = 50  # questions kept (and the most the badge counts)


def _suggest():
    try:
        from facecluster.suggest import suggest
    except ImportError:
        return None
    return suggest


class Queue:
    """The questions for one store, kept between requests (thread-safe)."""

    def __init__(self, db):
        self.db = db
        self.lock = threading.Lock()
        self.key = None  # the store state the list is valid for
        self.questions: list | None = None
        self.answered: list[tuple[object, int]] = []  # (question, correction id), for undo
        self.pending = False  # the list was just updated for a change: take the next key
        self.worker: threading.Thread | None = None
        self.computing = threading.Lock()  # one computation at a time (a page and its badge ask together)

    @property
    def available(self) -> bool:
        return _suggest() is not None

    def get(self, store: Store, key) -> list:
        """The questions, most useful first (computed now if the store changed otherwise)."""
        with self.computing:
            with self.lock:
                if self.questions is not None and self.key == key:
                    return list(self.questions)
            questions = _suggest()(store, limit=LIMIT)
            with self.lock:
                self.key, self.questions = key, questions
            return list(questions)

    def count(self, store: Store, key) -> int | None:
        """How many questions wait (for the badge). While the queue is being computed already,
        the last count (None: none yet) rather than a second computation."""
        if not self.computing.acquire(blocking=False):
            with self.lock:
                return None if self.questions is None else len(self.questions)
        try:
            with self.lock:
                if self.questions is not None and self.key == key:
                    return len(self.questions)
            questions = _suggest()(store, limit=LIMIT)
            with self.lock:
                self.key, self.questions = key, questions
            return len(questions)
        finally:
            self.computing.release()

    def answered_one(self, store: Store, question_id: str, correction: int | None) -> None:
        """``question_id`` was answered (``correction``: the correction it made, if any)."""
        with self.lock:
            if self.questions is None:
                return
            done = [q for q in self.questions if q.id == question_id]
            self.questions = [q for q in self.questions if q.id != question_id and _still_open(store, q)]
            if done and correction is not None:
                self.answered.append((done[0], correction))
            self.pending = True

    def undone(self, store: Store, correction: int | None) -> None:
        """The correction ``correction`` was undone: if an answer made it, ask that question again."""
        with self.lock:
            if self.questions is None or not self.answered or self.answered[-1][1] != correction:
                return
            question, _ = self.answered.pop()
            self.questions = [question] + [q for q in self.questions if _still_open(store, q)]
            self.pending = True

    def changed(self, key) -> None:
        """The store is now at ``key``: a list updated for this change stays; recompute it anyway."""
        with self.lock:
            if not self.pending:
                return
            self.pending = False
            self.key = key
            if self.worker is not None and self.worker.is_alive():
                return  # it will see the new key and go round again
            self.worker = threading.Thread(target=self._refresh, name="facecluster-queue", daemon=True)
            self.worker.start()

    def _refresh(self) -> None:
        while True:
            with self.lock:
                key = self.key
            try:
                with Store(self.db) as store:
                    questions = _suggest()(store, limit=LIMIT)
            except Exception:  # noqa: BLE001 - the next page load computes it again
                with self.lock:
                    self.questions, self.key, self.worker = None, None, None
                return
            with self.lock:
                if self.key == key:
                    self.questions, self.worker = questions, None
                    return


def _still_open(store: Store, question) -> bool:
    """Whether a question still makes sense (cheap checks; suggest.answer checks fully)."""
    if question.kind == "people":
        rows = store.db.execute("SELECT merged_into FROM people WHERE id IN (?, ?)",
                                (question.person, question.other)).fetchall()
        return len(rows) == 2 and all(r[0] is None for r in rows)
    person = store.db.execute("SELECT merged_into FROM people WHERE id=?", (question.person,)).fetchone()
    placed = store.db.execute("SELECT 1 FROM confirmed WHERE face_id=? AND explicit=1", (question.other,)).fetchone()
    refused = store.db.execute("SELECT 1 FROM not_person WHERE face_id=? AND person_id=?",
                               (question.other, question.person)).fetchone()
    rejected = store.db.execute("SELECT 1 FROM rejected WHERE face_id=?", (question.other,)).fetchone()
    return person is not None and person[0] is None and not (placed or refused or rejected)
