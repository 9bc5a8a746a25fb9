"""The ``facecluster`` command: a thin shell over the Python API, one module per command group.

Problems with the user's files, disk or patience end in one sentence on stderr and a non-zero
exit code; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys

import click

from facecluster.cli import evaluate, explore, people, pipeline, review, suggest
from facecluster.progress import printable

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class Stopped(click.ClickException):
    """Ctrl-C: the shell's usual exit code for SIGINT."""

    exit_code = 130


class FriendlyGroup(click.Group):
    """A group whose commands turn the library's known errors into one-line messages."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Stopped("stopped; everything finished so far is kept") from None
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            what = printable(exc.filename) if exc.filename else "a file"
            raise click.ClickException(f"disk full: could not write {what}; free some space and "
                                       "run again (everything finished so far is kept)") from None
        except Exception as exc:
            if not isinstance(exc, known_errors()):
                raise
            raise click.ClickException(printable(exc)) from None


def known_errors() -> tuple[type[Exception], ...]:
    """The library's errors about a damaged store or an export it refuses: their message
    says what happened and what to do. Looked up when needed, as not every version has them."""
    from facecluster import export, store

    found = (getattr(store, "StoreError", None), getattr(export, "ExportError", None))
    return tuple(error for error in found if error is not None)


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="facecluster")
def main():
    """Group the faces in your photos by person, offline."""


for _command in pipeline.COMMANDS + [evaluate.evaluate] + review.COMMANDS + suggest.COMMANDS:
    main.add_command(_command)
people.register(main)
explore.register(main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
