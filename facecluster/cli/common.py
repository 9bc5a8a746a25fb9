"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import json
from pathlib import Path

import click

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
