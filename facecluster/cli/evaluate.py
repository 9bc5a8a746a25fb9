"""``facecluster evaluate``: detection, embedding and clustering quality on a labelled set."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from facecluster.cli.common import WORKERS, emit, output_options, plural, printable
from facecluster.cluster import ALGORITHMS, DEFAULT_ALGORITHM
from facecluster.evaluate.benchmark import compare, evaluate_algorithm, subset_scores, sweep
from facecluster.evaluate.dataset import BoxesError, load_labelled_faces
from facecluster.evaluate.metrics import verification_report

NOISE_NOTE = "Faces left unknown (noise) count as one cluster each."
SWEEP_RANGES = {"threshold": "0.3:0.8:0.025", "eps": "0.3:0.8:0.025",
                "same_person_bound": "0.4:0.8:0.025", "merge_tolerance": "0.8:1.5:0.05",
                "k": "2:30:2", "min_samples": "1:10:1", "sim": "0.2:0.8:0.05"}


def parse_values(text: str) -> list[float]:
    """``"0.3:0.8:0.05"`` (start:stop:step, stop included) or ``"0.4,0.5,0.6"``.

    Raises
    ------
    ValueError
        When ``text`` is neither, or the range is empty.
    """
    if ":" in text:
        start, stop, step = (float(v) for v in text.split(":"))
        if step <= 0 or stop < start:
            raise ValueError(f"{text!r} is not a range start:stop:step with start <= stop and step > 0")
        return [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
    return [float(v) for v in text.split(",")]


def _values(ctx, param, text: str | None) -> list[float] | None:
    try:
        return None if text is None else parse_values(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give start:stop:step (e.g. 0.3:0.8:0.05) or "
                                 "values a,b,c") from None


def _sizes(ctx, param, text: str | None) -> list[int] | None:
    try:
        sizes = None if text is None else [int(v) for v in text.split(",")]
    except ValueError:
        sizes = [0]
    if sizes is not None and min(sizes) < 2:
        raise click.BadParameter(f"{text!r}: give subset sizes of 2 or more, e.g. 20,50")
    return sizes


@click.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--algorithm", type=click.Choice(list(ALGORITHMS)), default=DEFAULT_ALGORITHM,
              show_default=True)
@click.option("--compare", "side_by_side", is_flag=True,
              help="Also score the seed recipes and the k-means oracle.")
@click.option("--sweep", "parameter", default=None,
              help="Score --algorithm across values of this parameter (e.g. threshold).")
@click.option("--values", callback=_values, default=None,
              help="Sweep values: start:stop:step or a,b,c.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the sweep as a PNG.")
@click.option("--subsets", callback=_sizes, default=None,
              help="Also score random subsets of these sizes, e.g. 20,50.")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of labelled faces, image,identity,xmin,ymin,xmax,ymax (image relative "
                   "to DATASET): every box a detection matches (IoU >= 0.3) is scored, and the "
                   "share found is reported.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store for the embeddings [default: a cache file per dataset].")
@WORKERS
@output_options
def evaluate(dataset, algorithm, side_by_side, parameter, values, plot, subsets, boxes, db, workers,
             quiet, as_json):
    """Measure how well faces in DATASET (<set>/<identity>/<image>) are grouped.

    Each photo in an identity folder scores its largest face; with --boxes, every labelled
    face a detection matches is scored, in any photo of DATASET (group photos in _multi/).
    """
    if parameter and parameter not in ALGORITHMS[algorithm]().get_params():
        raise click.UsageError(f"{algorithm} has no parameter {parameter!r}; it has: "
                               + ", ".join(ALGORITHMS[algorithm]().get_params()))
    try:
        faces = load_labelled_faces(dataset, db=db, boxes_csv=boxes, workers=workers,
                                    quiet=quiet or as_json)
    except BoxesError as exc:
        raise click.BadParameter(printable(exc), param_hint="--boxes") from None
    if len(set(faces.labels.tolist())) < 2:
        raise click.ClickException("need faces of at least two identities to evaluate")
    result = {"dataset": str(dataset), "detection": faces.detection_report(),
              "embedding": _embedding_report(faces), "note": NOISE_NOTE}
    groups = faces.cannot_link()  # faces of one photo are different people, as in a real run
    if side_by_side:
        result["clustering"] = compare(faces.X, faces.labels, algorithm, cannot_link=groups)
    else:
        result["clustering"] = [{"method": algorithm, **evaluate_algorithm(faces.X, faces.labels, algorithm,
                                                                          cannot_link=groups)}]
    if subsets:
        result["subsets"] = {size: subset_scores(faces.X, faces.labels, size, cannot_link=groups)
                             for size in subsets}
    if parameter:
        result["sweep"] = _sweep(faces, algorithm, parameter, values)
        if plot:
            plot_sweep(result["sweep"], parameter, algorithm, dataset.name, plot)
    if as_json:
        emit(True, quiet, result, "")
    elif not quiet:
        print_result(result, faces)


def _embedding_report(faces) -> dict | None:
    """Same/different ROC of the embedding; None when no identity has two scored faces (no
    same-person pair to measure)."""
    counts = np.unique(faces.labels, return_counts=True)[1]
    return verification_report(faces.X, faces.labels) if (counts >= 2).any() else None


def _sweep(faces, algorithm: str, parameter: str, values: list[float] | None) -> list[dict]:
    grid = values or parse_values(SWEEP_RANGES.get(parameter, "0.3:0.8:0.05"))
    if parameter in ("k", "min_samples"):
        grid = [int(v) for v in grid]
    try:
        return sweep(faces.X, faces.labels, algorithm, parameter, grid, cannot_link=faces.cannot_link())
    except ValueError as exc:  # a value the algorithm rejects (scikit-learn says which)
        raise click.BadParameter(str(exc).splitlines()[0], param_hint="--values") from None


def print_result(result: dict, faces) -> None:
    console = Console(width=None if sys.stdout.isatty() else 150)
    d = result["detection"]
    console.print(f"[bold]{printable(result['dataset'])}[/bold]: {plural(d['photos'], 'photo')}, "
                  f"{plural(d['faces_found'], 'face')} found, {d['scored_faces']} scored "
                  f"({plural(d['identities'], 'identity')}); "
                  f"{plural(d['photos_without_face'], 'photo')} without a face, "
                  f"{d['photos_with_several_faces']} with several "
                  f"({'scored: every labelled box' if 'boxes' in d else 'scored: the largest'}), "
                  f"{d['unreadable']} unreadable")
    if "boxes" in d:
        print_boxes(console, d["boxes"])
    e = result["embedding"]
    if e is None:
        console.print("Embedding: not measured: no identity has two scored faces")
    else:
        _print_embedding(console, e)
    _print_clustering(console, result)


def _print_embedding(console: Console, e: dict) -> None:
    console.print(f"Embedding: ROC AUC {e['roc_auc']:.4f}, TAR@FAR1e-3 {e['tar_at_far_1e-3']:.3f}, "
                  f"TAR@FAR1e-2 {e['tar_at_far_1e-2']:.3f}, EER {e['eer']:.3f} at distance "
                  f"{e['eer_threshold']:.3f}; same-person {e['same_mean']:.3f}±{e['same_std']:.3f}, "
                  f"different {e['different_mean']:.3f}±{e['different_std']:.3f}")


def _print_clustering(console: Console, result: dict) -> None:
    table = Table(title="Clustering", caption=result["note"])
    for column in ("method", "clusters", "BCubed P", "BCubed R", "BCubed F", "pair F", "NMI", "ARI",
                   "unknown", "s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in result["clustering"]:
        table.add_row(row["method"], str(row["n_clusters"]), f"{row['bcubed_precision']:.3f}",
                      f"{row['bcubed_recall']:.3f}", f"{row['bcubed_f']:.3f}", f"{row['pairwise_f']:.3f}",
                      f"{row['nmi']:.3f}", f"{row['ari']:.3f}", f"{row['unknown_share']:.1%}",
                      f"{row['seconds']:.2f}")
    console.print(table)
    for size, scores in result.get("subsets", {}).items():
        console.print(f"Random subsets of {plural(size, 'face')} (mean BCubed F of 10): "
                      + ", ".join(f"{name} {f:.3f}" for name, f in scores.items()))
    if "sweep" in result:
        parameter = next(iter(result["sweep"][0]))
        sweep_table = Table(title=f"Sweep of {parameter}")
        for column in (parameter, "clusters", "BCubed F", "pair F"):
            sweep_table.add_column(column, justify="right")
        for row in result["sweep"]:
            sweep_table.add_row(f"{row[parameter]:g}", str(row["n_clusters"]), f"{row['bcubed_f']:.3f}",
                                f"{row['pairwise_f']:.3f}")
        console.print(sweep_table)


def print_boxes(console: Console, b: dict, examples: int = 5) -> None:
    """The labelled-boxes line: labelled faces, found (recall), scored, unlabelled detections."""
    console.print(f"Labelled boxes: {plural(b['labelled_faces'], 'labelled face')} in "
                  f"{plural(b['photos'], 'photo')}, {b['found']} found (recall {b['recall']:.1%}, "
                  f"IoU >= {b['min_iou']:g}), {b['scored']} scored; detections with no label: "
                  f"{b['unlabelled_detections']}", highlight=False)
    missed = b["missed"]
    if missed:
        shown = "; ".join(f"{printable(Path(m['photo']).name)} {printable(m['identity'])} "
                          f"({','.join(map(str, m['box']))})" for m in missed[:examples])
        more = f"; and {len(missed) - examples} more (--json lists all)" if len(missed) > examples else ""
        console.print(f"Not found: {shown}{more}", highlight=False, markup=False)


def plot_sweep(rows: list[dict], parameter: str, algorithm: str, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r[parameter] for r in rows]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(x, [r["bcubed_f"] for r in rows], "o-", label="BCubed F")
    left.plot(x, [r["pairwise_f"] for r in rows], "s--", label="pairwise F")
    left.set_xlabel(parameter)
    left.set_ylabel("F-score")
    left.set_ylim(0, 1.02)
    right = left.twinx()
    right.plot(x, [r["n_clusters"] for r in rows], "g:", label="clusters")
    right.set_ylabel("clusters", color="g")
    left.legend(loc="lower right")
    left.set_title(f"{algorithm} on {name}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
