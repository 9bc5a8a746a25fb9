"""``facecluster review``: look at the people and fix them in the browser (a local web app)."""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
import webbrowser
from pathlib import Path

import click

from facecluster.cli.common import output_options, plural
from facecluster.progress import printable


@click.command()
@click.argument("output", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Store file [default: OUTPUT/faces.db]. With --db alone, 'Update folders' "
                   "exports into the store's own folder.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on [default: any free port].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but 127.0.0.1 lets other machines see your "
                   "photos (a warning is printed).")
@click.option("--no-browser", is_flag=True, help="Do not open the web browser.")
@output_options
def review(output, db, port, host, no_browser, quiet, as_json):
    """Review and fix people in your browser: name, merge, split, move, reject, undo, and
    answer "Same person?" questions. OUTPUT is the folder of a run (its faces.db); "Update
    folders" re-exports into it. Stop with Ctrl-C."""
    from facecluster.store import Store
    from facecluster.store.people import people_counts
    from facecluster.web import LOOPBACK_HOSTS, ReviewServer

    db, output = _locations(output, db)
    try:
        with Store(db) as store:
            people = len(people_counts(store))  # no best faces: the page loads its own
    except sqlite3.DatabaseError as error:
        raise click.ClickException(f"{printable(str(db))} is not a facecluster store ({error})") from None
    if host.strip("[]") not in LOOPBACK_HOSTS:
        click.echo(f"warning: listening on {host}: other machines that can reach this one can see "
                   "your photos and change your people (the session token still guards changes)",
                   err=True)
    try:
        server = ReviewServer(db, output, host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} is in use: choose another with --port, or leave "
                                       "--port out for a free one") from None
        raise click.ClickException(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    threading.Thread(target=_announce, args=(server, people, db, output, quiet, as_json, no_browser),
                     daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not quiet and not as_json:
        click.echo("Stopped.")


def _locations(output: Path | None, db: Path | None) -> tuple[Path, Path]:
    """(store, export folder) from what the user gave."""
    if db is None:
        folder = output if output is not None else Path.cwd()
        db = folder / "faces.db"
        if not db.is_file():
            if output is None:
                raise click.UsageError("give the folder of a run (facecluster review ~/people) or --db FILE")
            raise click.ClickException(f"no faces.db in {printable(str(output))}: run `facecluster run "
                                       f"PHOTOS -o {printable(str(output))}` first, or give --db")
    return db.absolute(), (output if output is not None else db.parent).absolute()


def _announce(server, people: int, db: Path, output: Path, quiet: bool, as_json: bool,
              no_browser: bool) -> None:
    while not server.started:
        if server.server.should_exit:
            return
        time.sleep(0.02)
    if as_json:
        click.echo(json.dumps({"url": server.url, "db": str(db), "output": str(output),
                               "people": people}))
    elif not quiet:
        click.echo(printable(f"Reviewing {plural(people, 'person')} in {db}\n"
                             f"Open {server.url}   (Ctrl-C to stop)"))
    if not no_browser:
        webbrowser.open(server.url)


COMMANDS = [review]
