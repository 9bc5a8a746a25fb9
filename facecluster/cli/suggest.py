"""``facecluster suggest`` and ``facecluster answer``: the "same person?" queue.

The same questions, in the same order, as the review page: scripts and the benchmark use
exactly what a user sees. Every answer is a correction (``facecluster undo`` takes it back).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from facecluster.cli.common import emit, output_options
from facecluster.store import Store
from facecluster.store.people import CorrectionError

DB = click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                  help="Store file (OUTPUT/faces.db after a run).")


@click.command()
@DB
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many questions to list.")
@output_options
def suggest(db, limit, quiet, as_json):
    """List the next "same person?" questions, most useful first."""
    from facecluster.suggest import suggest as next_questions

    with Store(db) as store:
        questions = next_questions(store, limit=limit)
        names = store.people()
        now_in = {q.other: _person_of(store, q.other) for q in questions if q.kind == "face"}
    lines = [_describe(q, names, now_in.get(q.other)) for q in questions]
    if not questions:
        lines.append("no questions: nothing left that looks worth asking")
    elif not quiet:
        lines.append(f"answer with: facecluster answer QUESTION yes|no|skip --db {db}")
    emit(as_json, quiet, {"questions": [asdict(q) for q in questions]}, "\n".join(lines), answer=True)


@click.command()
@click.argument("question")
@click.argument("reply", metavar="yes|no|skip")
@DB
@output_options
def answer(question, reply, db, quiet, as_json):
    """Answer QUESTION (an id from `facecluster suggest`) with yes, no or skip."""
    from facecluster.suggest import answer as answer_question

    try:
        with Store(db) as store:
            message = answer_question(store, question, reply)
    except CorrectionError as error:
        raise click.ClickException(str(error)) from None
    emit(as_json, quiet, {"ok": True, "question": question, "reply": reply.strip().lower(),
                          "message": message}, message)


def _person_of(store: Store, face: int) -> int | None:
    row = store.db.execute("SELECT person_id FROM assignments WHERE face_id=?", (face,)).fetchone()
    return row[0] if row else None


def _describe(question, names: dict, now_in: int | None = None) -> str:
    """One line; a face question says where the face is now, since it may ask about the face's
    own person ("is face 804 really person 12?": yes confirms it there, no takes it out)."""
    def person(person_id: int, faces: list[int]) -> str:
        name = names.get(person_id)
        label = f"person {person_id}" + (f" ({name})" if name else "")
        return f"{label}, faces {' '.join(map(str, faces))}"

    if question.kind == "people":
        text = (f"is {person(question.other, question.other_faces)} the same as "
                f"{person(question.person, question.faces)}?")
    elif now_in == question.person:
        text = f"is face {question.other} really {person(question.person, question.faces)} (it is in it now)?"
    else:
        where = "unknown" if now_in is None else f"in person {now_in}"
        text = f"is face {question.other} ({where} now) {person(question.person, question.faces)}?"
    return f"{question.id:<18} {question.probability:>4.0%}  {text}"


COMMANDS = [suggest, answer]
