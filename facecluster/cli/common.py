"""Options and output helpers shared by the command modules.

Every command takes ``@output_options`` (``-q/--quiet`` and ``--json``) and prints its result
with :func:`emit`; counts in messages go through :func:`plural`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from facecluster.cluster import ALGORITHMS, DEFAULT_ALGORITHM
from facecluster.progress import printable
from facecluster.scan import ScanOptions

LINKS = click.Choice(["symlink", "hardlink", "copy"])
MAX_DETECT_MP = 100.0  # a 100 MP working image already takes the detector seconds and ~GBs
class FiniteRange(click.FloatRange):
    """A float range that also refuses ``nan`` and ``inf`` (which compare as in any range)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


POSITIVE = FiniteRange(min=0, min_open=True)
SEED = click.IntRange(0, 2**32 - 1)  # numpy and scikit-learn accept no other seeds
WORKERS = click.option("--workers", type=click.IntRange(min=1), default=None,
                       help="Processes to use [default: all cores].")
IRREGULAR = {"person": "people", "identity": "identities"}


# -- output -----------------------------------------------------------------------------------
def output_options(func):
    """``-q/--quiet`` and ``--json``: adds the ``quiet`` and ``as_json`` parameters."""
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON on stdout.")(func)
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary.")(func)


def emit(as_json: bool, quiet: bool, data, text: str, answer: bool | str = False) -> None:
    """Print ``data`` as JSON, or else ``text`` unless ``quiet``; an ``answer`` (what a query
    command was asked for: the people, the questions, a verdict) is printed even when quiet:
    ``True`` for all of ``text``, or the lines to print instead of it.

    Names that are not valid UTF-8 are printed escaped (``\\udce9``), never a crash.
    """
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_json_value))
    elif not quiet or answer is True:
        click.echo(printable(text))
    elif answer:
        click.echo(printable(answer))


def _json_value(value):
    """JSON for what ``json`` does not know: numpy numbers and arrays, paths."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1.

    Examples
    --------
    >>> plural(1, "face"), plural(2, "face"), plural(1, "person"), plural(3, "person")
    ('1 face', '2 faces', '1 person', '3 people')
    """
    if n == 1:
        return f"{n} {word}"
    return f"{n} {many or IRREGULAR.get(word, word + 's')}"


# -- scan options -----------------------------------------------------------------------------
def _check_embedder(ctx, param, value: str | None) -> str | None:
    """A known embedder name or an existing .onnx file, checked before any work starts."""
    if value is None or value in ("dlib", "dlib-native"):
        return value
    if not value.endswith(".onnx"):
        raise click.BadParameter(f"{value!r} is not an embedder: use dlib, dlib-native or an .onnx file")
    if not Path(value).expanduser().is_file():
        raise click.BadParameter(f"no such .onnx file: {value}")
    return value


def embedder_option(default: str | None, help: str):
    return click.option("--embedder", default=default, show_default=default is not None,
                        callback=_check_embedder, help=help)


def scan_options(func):
    """Options that say how faces are found and embedded."""
    options = [
        click.option("--detector", type=click.Choice(["hog", "cnn", "cnn-dlib", "mtcnn"]), default=None,
                     help="Face detector: dlib HOG (fast; the default for photos, with MTCNN "
                          "looking for faces below its reach), dlib's MMOD CNN (turned faces; "
                          "~0.4 s a frame; the default for video) or MTCNN (faces of every size "
                          "down to ~12 px at the working resolution)."),
        click.option("--detect-mp", "megapixels",
                     type=FiniteRange(min=0, max=MAX_DETECT_MP, min_open=True), default=None,
                     help="Detector working resolution in megapixels [default: hog 1.0, cnn 0.6]."),
        click.option("--min-face", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Ignore faces narrower than this many pixels."),
        embedder_option("dlib", "Embedding model: dlib, dlib-native, or a path to an .onnx file."),
        click.option("--jitter", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Average each face over this many jittered copies (slower, steadier)."),
        WORKERS,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _options(detector, megapixels, min_face, embedder, jitter) -> ScanOptions:
    return ScanOptions(detector=detector, megapixels=megapixels, min_face=min_face,
                       embedder=embedder, jitter=jitter)


# -- cluster options --------------------------------------------------------------------------
def cluster_options(func):
    """Options that choose and tune the clustering algorithm."""
    options = [
        click.option("--algorithm", type=click.Choice(list(ALGORITHMS)), default=DEFAULT_ALGORITHM,
                     show_default=True, help="Clustering algorithm; the default needs no tuning."),
        click.option("--threshold", type=POSITIVE, default=None,
                     help="chinese-whispers / hac: distance threshold (seed recipes: 0.5)."),
        click.option("--eps", type=POSITIVE, default=None, help="dbscan: neighbourhood radius [0.5]."),
        click.option("--min-samples", type=click.IntRange(min=1), default=None,
                     help="dbscan: core size [5]."),
        click.option("--linkage", type=click.Choice(["average", "complete", "single", "ward"]),
                     default=None, help="hac: linkage [average]."),
        click.option("--seed", type=SEED, default=None, help="graph: random seed [0]."),
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


# -- video options ----------------------------------------------------------------------------
def video_options(func):
    """Options for video files, webcams and streams."""
    options = [
        click.option("--fps", type=POSITIVE, default=2.0, show_default=True,
                     help="Video: frames analysed per second (by timestamp)."),
        click.option("--duration", default=None,
                     help="Video/stream: stop after this long (90, 90s, 10m, 1h) [default: to the end, or Ctrl-C]."),
        click.option("--annotate", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Video: also write a copy with boxes and person labels here."),
        click.option("--with-clothing", is_flag=True,
                     help="Video: cluster on face and clothing (torso colours and texture)."),
        click.option("--time-weight", type=FiniteRange(0, 1, max_open=True), default=0.0,
                     show_default=True, help="Video: share of the distance given to time apart (0 to below 1)."),
        click.option("--min-people", type=click.IntRange(min=0), default=None,
                     help="Video: keep only frames with at least this many faces."),
        click.option("--max-people", type=click.IntRange(min=0), default=None,
                     help="Video: keep only frames with at most this many faces."),
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


# -- sources ----------------------------------------------------------------------------------
def _source(text: str | None):
    """A PHOTOS folder or file, a video, ``webcam:N`` or a stream URL."""
    from facecluster.video import is_stream_spec

    if text is None or is_stream_spec(text):
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise click.BadParameter(f"no such file or folder: {printable(text)} "
                                 "(or give webcam:N or a stream URL)", param_hint="SOURCE")
    return path


def _require_media(source, exclude: list[Path], videos: bool = False) -> None:
    """Stop with one sentence when a folder holds nothing to scan (rather than "0 photos").

    It costs a second walk of the folder tree: listing names, far cheaper than the scan."""
    from facecluster.media import find_photos

    if not isinstance(source, Path) or not source.is_dir() or find_photos(source, exclude):
        return
    if videos:
        from facecluster.video.sources import find_videos

        if find_videos(source, exclude):
            return
    raise click.ClickException(f"no photos found in {printable(source)}")


# -- summaries --------------------------------------------------------------------------------
def _scan_text(report) -> str:
    if getattr(report, "videos", 0):
        lines = [_video_text(report)]
    else:
        lines = [f"{plural(report.photos, 'photo')}: {report.scanned} read, {report.unchanged} "
                 f"unchanged, {report.moved} moved, {report.missing} missing; "
                 f"{plural(report.faces, 'new face')}"
                 + (f" ({plural(report.without_face, 'photo')} without one)" if report.without_face else "")
                 + f" in {report.seconds:.1f} s"]
    if report.errors:
        lines.append(f"{plural(len(report.errors), 'file')} could not be read:")
        lines += [f"  {path}: {why}" for path, why in report.errors[:20]]
        if len(report.errors) > 20:
            lines.append(f"  ... and {len(report.errors) - 20} more (see index.html)")
    notes = getattr(report, "notes", None)  # photo scans: faces that may be too small, and why
    lines += notes() if notes else []
    return "\n".join(lines)


def _video_text(report) -> str:
    """The summary of a scan that read videos or streams."""
    text = (f"{plural(report.videos, 'video/stream', 'videos/streams')} ({report.video_seconds:.1f} s "
            f"analysed, {plural(report.tracks, 'track')}) and {plural(report.photos, 'photo')}: "
            f"{plural(report.faces, 'new face')}, {report.unchanged} unchanged, in {report.seconds:.1f} s")
    if report.stopped == "interrupted":
        text += "\nCapture stopped by Ctrl-C; the faces seen so far were clustered."
    if report.dropped_samples:
        text += (f"\n{plural(report.dropped_samples, 'sample')} skipped: analysis could not keep "
                 "up with the stream.")
    return text


def _cluster_text(report) -> str:
    return (f"{plural(report.people, 'person')} among {plural(report.faces, 'face')} "
            f"({report.algorithm}); {plural(report.unknown, 'face')} unknown")
