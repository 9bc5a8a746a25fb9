"""The ``facecluster`` command: a thin shell over the Python API, one module per command group."""

from __future__ import annotations

import sys

import click

from facecluster.cli import evaluate, explore, people, pipeline


@click.group()
@click.version_option(package_name="facecluster")
def main():
    """Group the faces in your photos by person, offline."""


for _command in pipeline.COMMANDS + [evaluate.evaluate]:
    main.add_command(_command)
people.register(main)
explore.register(main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
