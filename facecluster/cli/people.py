"""``facecluster people / name / merge / move / split / reject / unreject / undo``.

A person is given by the number of its folder (``person_0012`` -> 12, or ``person_0012``) or by
name. Corrections apply at once and hold after every later ``run``, ``scan`` and ``cluster``;
re-export (``facecluster export`` or ``run``) to refresh the folders.
"""

from __future__ import annotations

from pathlib import Path

import click

from facecluster.cli.common import emit, output_options, plural
from facecluster.store import Store
from facecluster.store import people as people_api

DB = click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                  help="Store file (OUTPUT/faces.db after a run).")
FACE_IDS = click.argument("faces", metavar="FACE...", type=click.IntRange(min=1), nargs=-1, required=True)


def _correct(db: Path, as_json: bool, quiet: bool, action, *args, message) -> None:
    """Apply a correction; a refusal becomes a one-line error and changes nothing."""
    try:
        with Store(db) as store:
            result = action(store, *args)
    except people_api.CorrectionError as exc:
        raise click.ClickException(str(exc)) from None
    text = message(result)
    emit(as_json, quiet, {"ok": True, "result": result, "message": text}, text)


@click.command()
@DB
@output_options
def people(db, quiet, as_json):
    """List people: id (the folder's number), faces, name; then unknown and rejected faces."""
    with Store(db) as store:  # counts only: a store of a million faces lists in about a second
        rows = [{"id": i, "folder": people_api.folder_name(i, name), "name": name, "faces": n}
                for i, name, n in people_api.people_counts(store)]
        counts = people_api.face_counts(store)
        unknown, rejected = counts["unknown"], counts["rejected"]
    lines = [f"{row['id']:>6}  {row['folder']:<24} {plural(row['faces'], 'face'):>11}  {row['name'] or ''}"
             for row in rows]
    lines += [f"{'':>6}  {'unknown':<24} {plural(unknown, 'face'):>11}",
              f"{'':>6}  {'rejected':<24} {plural(rejected, 'face'):>11}"]
    emit(as_json, quiet, {"people": rows, "unknown_faces": unknown, "rejected_faces": rejected},
         "\n".join(lines), answer=True)


@click.command()
@click.argument("person")
@click.argument("name")
@DB
@output_options
def name(person, name, db, quiet, as_json):
    """Name PERSON (12, person_0012 or a current name)."""
    _correct(db, as_json, quiet, people_api.name_person, person, name,
             message=lambda p: f"person {p} is now {name.strip()!r}")


@click.command()
@click.argument("people_refs", metavar="PERSON PERSON...", nargs=-1, required=True)
@DB
@output_options
def merge(people_refs, db, quiet, as_json):
    """Merge people into the first one (it keeps its id and name)."""
    _correct(db, as_json, quiet, people_api.merge_people, list(people_refs),
             message=lambda p: f"merged {', '.join(people_refs[1:])} into person {p}")


@click.command()
@FACE_IDS
@click.option("--to", "to_person", default="new", show_default=True,
              help="Person (id or name) to move the faces to, or 'new' to split them off.")
@DB
@output_options
def move(faces, to_person, db, quiet, as_json):
    """Move faces (ids from faces.csv or the review page) to a person, or split them off."""
    target = None if to_person == "new" else to_person
    _correct(db, as_json, quiet, people_api.move_faces, list(faces), target,
             message=lambda p: f"moved {plural(len(faces), 'face')} to person {p}")


@click.command()
@FACE_IDS
@click.option("--name", "new_name", default=None, help="Name for the new person.")
@DB
@output_options
def split(faces, new_name, db, quiet, as_json):
    """Split faces off into a new person (they stay apart from the faces they leave)."""
    _correct(db, as_json, quiet, people_api.move_faces, list(faces), None, new_name,
             message=lambda p: f"split {plural(len(faces), 'face')} off as person {p}")


@click.command()
@FACE_IDS
@DB
@output_options
def reject(faces, db, quiet, as_json):
    """Mark faces as nobody's (not a face, a stranger) until unrejected."""
    _correct(db, as_json, quiet, people_api.reject_faces, list(faces),
             message=lambda _: f"rejected {plural(len(faces), 'face')}")


@click.command()
@FACE_IDS
@DB
@output_options
def unreject(faces, db, quiet, as_json):
    """Take faces back from the rejected ones (the next clustering places them)."""
    _correct(db, as_json, quiet, people_api.unreject_faces, list(faces),
             message=lambda _: f"{plural(len(faces), 'face')} no longer rejected")


@click.command()
@DB
@output_options
def undo(db, quiet, as_json):
    """Undo the latest correction (again to undo the one before)."""
    _correct(db, as_json, quiet, people_api.undo, message=lambda c: f"undid {_describe(c)}")


def _describe(correction: dict) -> str:
    action = correction["action"]
    if action == "name":
        return f"naming person {correction['person']} {correction['name']!r}"
    if action == "merge":
        return f"merging {', '.join(map(str, correction['people'][1:]))} into {correction['people'][0]}"
    if action in ("move", "split", "reject", "unreject", "confirm"):
        return f"{action} of {plural(len(correction['faces']), 'face')}"
    if action == "not-person":
        return f"'face {correction['face']} is not person {correction['person']}'"
    if action == "different":
        return f"'people {correction['people'][0]} and {correction['people'][1]} are different'"
    return action.replace("-", " ")


COMMANDS = [people, name, merge, move, split, reject, unreject, undo]


def register(main: click.Group) -> None:
    for command in COMMANDS:
        main.add_command(command)
