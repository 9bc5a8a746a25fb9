"""``facecluster people / name / merge / move / reject``: look at and correct the people found.

Corrections apply at once and are logged in the store; every later ``run`` or ``cluster``
honours them. Re-export (``facecluster export`` or ``run``) to refresh the folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from facecluster import corrections
from facecluster.store import Store

DB = click.option("--db", type=click.Path(exists=True, path_type=Path), required=True,
                  help="Store file (OUTPUT/faces.db after a run).")


def _apply(action, *args, **kwargs):
    try:
        return action(*args, **kwargs)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@DB
@click.option("--json", "as_json", is_flag=True)
def people(db, as_json):
    """List people: id, name, number of faces (largest first)."""
    with Store(db) as store:
        names = store.people()
        counts: dict = {}
        for person, _ in store.assignments().values():
            counts[person] = counts.get(person, 0) + 1
    rows = [{"id": p, "name": names.get(p), "faces": n}
            for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or 0)) if p is not None]
    if as_json:
        click.echo(json.dumps({"people": rows, "unknown_faces": counts.get(None, 0)}, indent=2))
        return
    for number, row in enumerate(rows, start=1):
        click.echo(f"{row['id']:>6}  person_{number:03d}  {row['faces']:>5} faces  {row['name'] or ''}")
    click.echo(f"{'':>6}  unknown     {counts.get(None, 0):>5} faces")


@click.command()
@click.argument("person", type=int)
@click.argument("name")
@DB
def name(person, name, db):
    """Name PERSON (an id from `facecluster people`)."""
    _apply(corrections.name_person, db, person, name)
    click.echo(f"person {person} is now {name!r}")


@click.command()
@click.argument("people_ids", metavar="PERSON PERSON...", type=int, nargs=-1, required=True)
@DB
def merge(people_ids, db):
    """Merge people into the first one."""
    target = _apply(corrections.merge_people, db, list(people_ids))
    click.echo(f"merged {', '.join(map(str, people_ids[1:]))} into {target}")


@click.command()
@click.argument("faces", metavar="FACE...", type=int, nargs=-1, required=True)
@click.option("--to", "to_person", default="new", show_default=True,
              help="Person id to move the faces to, or 'new' to split them off as a new person.")
@DB
def move(faces, to_person, db):
    """Move faces (ids from faces.csv) to another person, or split them off."""
    target = None if to_person == "new" else _to_int(to_person)
    person = _apply(corrections.move_faces, db, list(faces), target)
    click.echo(f"moved {len(faces)} faces to person {person}")


@click.command()
@click.argument("faces", metavar="FACE...", type=int, nargs=-1, required=True)
@DB
def reject(faces, db):
    """Mark faces as nobody's (not a face, a stranger) for good."""
    _apply(corrections.reject_faces, db, list(faces))
    click.echo(f"rejected {len(faces)} faces")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a person id or 'new'", param_hint="--to") from None


def register(main: click.Group) -> None:
    for command in (people, name, merge, move, reject):
        main.add_command(command)
