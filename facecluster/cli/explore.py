"""The exploring commands: ``similar``, ``find``, ``compare``, ``map`` and ``graph``.

They are added to the ``facecluster`` group by :func:`register` (called at the end of
:mod:`facecluster.cli`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, replace
from pathlib import Path

import click

from facecluster.cli.common import (POSITIVE, SEED, WORKERS, embedder_option, emit,
                                    output_options, plural)
from facecluster.explore import similar as sim
from facecluster.scan import ScanOptions
from facecluster.store import Store

DEFAULT_DB = Path("faces.db")


# -- shared options and helpers ---------------------------------------------------------------
def face_choice(func):
    """--face N / --largest: which face of a photo with several."""
    func = click.option("--largest", is_flag=True,
                        help="Use the largest face when the photo has several.")(func)
    return click.option("--face", type=click.IntRange(min=1), default=None,
                        help="Use face number N of the photo (the error lists them).")(func)


def query_options(func):
    """How the query photo is read; by default exactly as the store was scanned."""
    options = [
        click.option("--detector", type=click.Choice(["hog", "cnn", "cnn-dlib", "mtcnn"]), default=None,
                     help="Face detector for the query [default: the store's, else hog]."),
        embedder_option(None, "Embedding model [default: the store's, else dlib]."),
        click.option("--threshold", type=POSITIVE, default=None,
                     help="Same-person L2 threshold [default: measured on the store: at most 1 in "
                          "1,000 pairs of different people (compare) or searches for someone not "
                          "in it (find, similar), else the weaker rate the store can show]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.contextmanager
def friendly_errors():
    """Turn the library's expected errors into one-line CLI messages, never a traceback."""
    from facecluster.explore.embedding_map import MapError

    try:
        yield
    except sim.AmbiguousFace as exc:
        raise click.UsageError(str(exc)) from None
    except (sim.QueryError, MapError, FileNotFoundError, PermissionError) as exc:
        raise click.ClickException(str(exc)) from None


def _existing_store(db: Path) -> Path:
    if not db.is_file():
        raise click.UsageError(f"no store at {db}: give --db, or run facecluster scan first")
    return db


def _options(base: ScanOptions, detector: str | None, embedder: str | None) -> ScanOptions:
    changes = {k: v for k, v in (("detector", detector), ("embedder", embedder)) if v is not None}
    return replace(base, **changes)


def _store_options(db: Path, detector, embedder) -> ScanOptions:
    with Store(db) as store:
        return _options(sim.store_scan_options(store), detector, embedder)


def _what(collection: sim.Collection, pairs: bool = True) -> str:
    """Where a threshold is measured, in words (``pairs``: for two faces, which faces sharing a
    photo measure even before any clustering)."""
    if collection.kind == "gallery":
        return "the gallery (its identity folders)"
    if any(label is not None for label in collection.labels):
        return f"{collection.db} (its latest clustering)"
    return f"{collection.db} (not clustered yet{', so only faces sharing a photo count' if pairs else ''})"


def _threshold(collection: sim.Collection, given: float | None, model: str) -> sim.Threshold:
    """The same-person threshold of two faces and its false-accept rate, measured on the
    collection (``compare``)."""
    return sim.calibrate(collection.X, collection.labels, model, _what(collection), collection.shots, given)


def _search_thresholds(collection: sim.Collection, given: float | None,
                       model: str) -> tuple[sim.Threshold, sim.Threshold]:
    """A search's thresholds (``find``, ``similar``): for a person (several of their photos
    within it) and for a single face, each keeping how often a stranger is matched."""
    what = _what(collection, pairs=False)
    pairs = sim.calibrate(collection.X, collection.labels, model, what, collection.shots)
    nearest = sim.search_samples(collection.X, collection.labels, (sim.SEARCH_PHOTOS, 1))
    return tuple(sim.calibrate_search(collection.X, collection.labels, model, what, given, photos=k,
                                      pairs=pairs, nearest=nearest[k]) for k in (sim.SEARCH_PHOTOS, 1))


def _query(photo: Path, options: ScanOptions, face: int | None, largest: bool, option: str = "--face"):
    faces = sim.query_faces(photo, options)
    chosen = sim.pick_face(faces, face, largest, photo=str(photo), option=option)
    return faces, chosen


def _number(faces, chosen) -> int:
    """1-based number of ``chosen`` among ``faces`` (by identity: records hold arrays)."""
    return next(i for i, face in enumerate(faces, start=1) if face is chosen)


def _face_line(photo: Path, faces, chosen) -> str:
    b = chosen.box
    return (f"{photo}: face {_number(faces, chosen)} of {len(faces)} "
            f"({b[2] - b[0]}x{b[3] - b[1]} px at ({b[0]}, {b[1]}))")


def _threshold_line(threshold: sim.Threshold) -> str:
    if threshold.unit == "searches" and threshold.photos > 1:
        return (f"A person matches when {threshold.photos} of their photos are within L2 "
                f"{threshold.value:.3f}: {threshold.note}")
    if threshold.unit == "searches":
        return f"An unknown face matches when within L2 {threshold.value:.3f}: {threshold.note}"
    return f"Same person only when L2 <= {threshold.value:.3f}: {threshold.note}"


def _face_table(matches: list[dict]) -> list[str]:
    lines = [f"  {'rank':>4}  {'L2':>6}  {'cosine':>6}  same  {'person':<16} photo"]
    lines += [f"  {m['rank']:>4}  {m['l2']:6.3f}  {m['cosine']:6.3f}  "
              f"{'yes' if m['same_person'] else 'no ':<4}  {(m['label'] or 'unknown')[:16]:<16} {m['photo']}"
              for m in matches]
    return lines


def _identity_table(identities: list[dict]) -> list[str]:
    lines = [f"  {'rank':>4}  {'match':>6}  {'best':>6}  {'mean':>6}  {'faces':>5}  same  name"]
    lines += [f"  {r['rank']:>4}  {r['match_l2']:6.3f}  {r['best_l2']:6.3f}  {r['mean_l2']:6.3f}  {r['faces']:>5}  "
              f"{'yes' if r['same_person'] else 'no ':<4}  {r['label']}" for r in identities]
    return lines


# -- similar ----------------------------------------------------------------------------------
@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store to search [default: faces.db; with --gallery: a store per gallery "
                   "in ~/.cache/facecluster/galleries/].")
@click.option("--gallery", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Search a labelled folder GALLERY/<identity>/<image> instead (scanned and cached).")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many faces (and people) to list.")
@face_choice
@query_options
@click.option("--montage", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a picture: the query face, then the matches with their distances.")
@WORKERS
@output_options
def similar(photo, db, gallery, top, face, largest, detector, embedder, threshold, montage, workers,
            quiet, as_json):
    """Rank the stored faces (and people) that look most like the face in PHOTO."""
    with friendly_errors():
        if gallery is not None:
            db = db or sim.gallery_db(gallery)
            options = _options(ScanOptions(), detector, embedder)
            if not (quiet or as_json):
                click.echo(f"Scanning the gallery {gallery} into {db} ...", err=True)
            sim.scan_gallery(gallery, db, options, workers, quiet=quiet or as_json)
        else:
            db = _existing_store(db or DEFAULT_DB)
            options = _store_options(db, detector, embedder)
        faces, chosen = _query(photo, options, face, largest)
        collection = (sim.load_gallery(db, gallery, chosen.model) if gallery is not None
                      else sim.load_store(db, chosen.model))
        limit, face_limit = _search_thresholds(collection, threshold, chosen.model)
        matches = sim.rank_faces(chosen.embedding, collection, face_limit.value, top, skip_photo=photo)
        every = sim.rank_identities(chosen.embedding, collection, limit.value, skip_photo=photo)
        identities = every[:top]
        matched_labels = {r["label"] for r in every if r["same_person"]}
        for m in matches:  # a face of a person is that person's verdict; an unknown face, its own
            m["same_person"] = (m["label"] in matched_labels) if m["label"] else m["same_person"]
        if montage is not None:
            _write_montage(db, chosen, matches, montage)
    data = {"query": {"photo": str(photo), "face": _number(faces, chosen), "faces": len(faces),
                      "box": list(chosen.box)},
            "db": str(db), "gallery": str(gallery) if gallery else None,
            "threshold": asdict(limit), "face_threshold": asdict(face_limit),
            "faces": matches, "people": identities,
            "montage": str(montage) if montage else None}
    kind = "identities" if gallery is not None else "people"
    lines = [f"Query {_face_line(photo, faces, chosen)}",
             *([_threshold_line(face_limit)] if _has_unknown(collection) else []),
             f"Nearest faces ({len(collection.face_ids)} searched):", *_face_table(matches)]
    if identities:
        lines += [_threshold_line(limit),
                  f"Nearest {kind} (match: the L2 within which {limit.photos} of their faces are; "
                  f"best and mean L2 over their faces):", *_identity_table(identities)]
    matched = [r["label"] for r in identities if r["same_person"]]
    verdict = (f"Same person: {', '.join(matched)}" if matched else
               f"No match: none of the {kind} is this person")
    lines.append(verdict)
    if montage is not None:
        lines.append(f"Montage: {montage}")
    answer = [*_face_table(matches), *(_identity_table(identities) if identities else []), verdict]
    emit(as_json, quiet, data, "\n".join(lines), answer="\n".join(answer))


def _write_montage(db: Path, chosen, matches: list[dict], path: Path) -> None:
    with Store(db) as store:
        chips = [store.chip(m["face_id"]) for m in matches]
    captions = [f"#{m['rank']} L2 {m['l2']:.3f} cos {m['cosine']:.3f}\n"
                f"{(m['label'] or Path(m['photo']).name)[:22]}" for m in matches]
    path.parent.mkdir(parents=True, exist_ok=True)
    sim.match_montage(chosen.chip_jpeg, chips, captions).save(path, quality=90)


# -- find -------------------------------------------------------------------------------------
@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
              show_default=True, help="Clustered store to search.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to put the person's photos in (as links by default).")
@face_choice
@query_options
@click.option("--copy", "link", flag_value="copy", help="Copy the photos.")
@click.option("--hardlink", "link", flag_value="hardlink", help="Hard-link the photos.")
@click.option("--symlink", "link", flag_value="symlink", default=True, help="Symlink the photos (default).")
@output_options
def find(photo, db, output, face, largest, detector, embedder, threshold, link, quiet, as_json):
    """Put every photo of the person in PHOTO into OUTPUT.

    The person is the nearest one with two of their photos (their one photo, for a person
    with one) within the search threshold, and unknown faces within the single-face threshold
    are theirs too (their photos are added); both thresholds keep how often someone who is not
    in the store is matched. When nobody is that close, the answer is "no match" and nothing
    is added.
    """
    with friendly_errors():
        db = _existing_store(db)
        faces, chosen = _query(photo, _store_options(db, detector, embedder), face, largest)
        collection = sim.load_store(db, chosen.model)
        if not (collection.people >= 0).any():
            raise click.ClickException(f"{db} is not clustered yet: run facecluster cluster --db {db}")
        limit, face_limit = _search_thresholds(collection, threshold, chosen.model)
        matches = sim.rank_faces(chosen.embedding, collection, face_limit.value)
        person = next((r for r in sim.rank_identities(chosen.embedding, collection, limit.value)
                       if r["same_person"] and r["person_id"] is not None), None)
        match = person and next(m for m in matches if m["person_id"] == person["person_id"])
        unknown = [m for m in matches if m["same_person"] and m["person_id"] is None]
        photos = sorted({p for p, who in zip(collection.photos, collection.people)
                         if person is not None and who == person["person_id"]}
                        | {m["photo"] for m in unknown})
        added = link_photos(photos, output, link or "symlink") if photos else 0
    data = {"query": {"photo": str(photo), "face": _number(faces, chosen), "faces": len(faces)},
            "match": match is not None or bool(unknown), "person": match and match["label"],
            "person_id": match and match["person_id"], "matched_face": match or (unknown or [None])[0],
            "unknown_faces": [m["face_id"] for m in unknown],
            "match_l2": person and person["match_l2"],
            "nearest_face": matches[0], "searched": len(matches), "threshold": asdict(limit),
            "face_threshold": asdict(face_limit),
            "photos": photos, "added": added, "output": str(output)}
    found = _find_lines(match, person, unknown, matches, photos, added, output)
    unknown_line = [_threshold_line(face_limit)] if _has_unknown(collection) else []
    emit(as_json, quiet, data, "\n".join([f"Query {_face_line(photo, faces, chosen)}", *found,
                                          _threshold_line(limit), *unknown_line]),
         answer="\n".join(found))


def _has_unknown(collection: sim.Collection) -> bool:
    """Whether the collection has faces in no person (only then is the single-face threshold
    used, and worth a line)."""
    return any(label is None for label in collection.labels)


def _find_lines(match: dict | None, person: dict | None, unknown: list[dict], matches: list[dict],
                photos: list[str], added: int, output: Path) -> list[str]:
    """What ``find`` found: the person and unknown faces within the threshold, and the photos
    added; or "no match" and the nearest face."""
    also = f" and {plural(len(unknown), 'unknown face')} (in no person yet)" if unknown else ""
    if match is None and unknown:
        nearest = unknown[0]
        return [f"Matches {plural(len(unknown), 'unknown face')} (in no person yet): the nearest, "
                f"face {nearest['face_id']}, at L2 {nearest['l2']:.3f} in {nearest['photo']}",
                f"{plural(len(photos), 'photo')} of them: {added} added to {output}"]
    if match is None:
        nearest = matches[0]
        verdict = (f"No match: nobody among the {plural(len(matches), 'face')} searched is this "
                   f"person; the nearest ({nearest['label'] or 'unknown'}, face "
                   f"{nearest['face_id']}) is at L2 {nearest['l2']:.3f}")
        return [verdict, f"Nothing added to {output}"]
    verdict = (f"Matches {match['label']}: {_photos_within(person)} L2 {person['match_l2']:.3f}; "
               f"the nearest, face {match['face_id']}, at {match['l2']:.3f} (cosine {match['cosine']:.3f}) "
               f"in {match['photo']}")
    return [verdict + also, f"{plural(len(photos), 'photo')} of {match['label']}: {added} added to {output}"]


def _photos_within(person: dict) -> str:
    n = min(sim.SEARCH_PHOTOS, person["faces"])
    return "their one photo is within" if n == 1 else f"{n} of their photos are within"


def link_photos(photos: list[str], folder: Path, link: str) -> int:
    """Link (or copy) each photo into ``folder``, skipping ones already there; returns how
    many were added."""
    from facecluster.export import _link_photo

    folder.mkdir(parents=True, exist_ok=True)
    present = {os.path.realpath(p) for p in folder.iterdir() if p.is_symlink()}
    names = {p.name for p in folder.iterdir()}
    added = 0
    for photo in photos:
        if os.path.realpath(photo) in present or (link != "symlink" and Path(photo).name in names):
            continue
        _link_photo(Path(photo), folder, link)
        added += 1
    return added


# -- compare ----------------------------------------------------------------------------------
@click.command()
@click.argument("photo_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("photo_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--face-a", type=click.IntRange(min=1), default=None, help="Face number in PHOTO_A.")
@click.option("--face-b", type=click.IntRange(min=1), default=None, help="Face number in PHOTO_B.")
@click.option("--largest", is_flag=True, help="Use the largest face of a photo with several.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibrate the threshold on this store [default: faces.db when present].")
@query_options
@output_options
def compare(photo_a, photo_b, face_a, face_b, largest, db, detector, embedder, threshold, quiet,
            as_json):
    """Distance between the faces in PHOTO_A and PHOTO_B, and whether they are one person."""
    with friendly_errors():
        db = db if db is not None else (DEFAULT_DB if DEFAULT_DB.is_file() else None)
        base = _store_options(_existing_store(db), None, None) if db is not None else ScanOptions()
        options = _options(base, detector, embedder)
        faces_a, a = _query(photo_a, options, face_a, largest, "--face-a")
        faces_b, b = _query(photo_b, options, face_b, largest, "--face-b")
        l2, cosine = (float(v[0]) for v in sim.distances(a.embedding, b.embedding[None]))
        limit = _compare_threshold(db, threshold, a.model)
    same = l2 <= limit.value
    verdict = "same person" if same else "no match"
    data = {"a": {"photo": str(photo_a), "face": _number(faces_a, a), "faces": len(faces_a)},
            "b": {"photo": str(photo_b), "face": _number(faces_b, b), "faces": len(faces_b)},
            "l2": round(l2, 4), "cosine": round(cosine, 4), "same_person": same,
            "threshold": asdict(limit)}
    result = f"L2 distance {l2:.3f}, cosine distance {cosine:.3f}: {verdict}"
    emit(as_json, quiet, data, "\n".join([
        f"A {_face_line(photo_a, faces_a, a)}", f"B {_face_line(photo_b, faces_b, b)}",
        result, _threshold_line(limit)]), answer=result)


def _compare_threshold(db: Path | None, given: float | None, model: str) -> sim.Threshold:
    if db is not None:
        return _threshold(sim.load_store(db, model), given, model)
    if given is not None:
        return sim.given_threshold(given)
    return sim.published(model, "no store to measure it on (give --db)")


# -- map and graph ----------------------------------------------------------------------------
@click.command(name="map")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
              show_default=True, help="Store file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML page to write; a PNG of the same name goes beside it.")
@click.option("--method", type=click.Choice(["pca", "tsne", "umap"]), default="tsne", show_default=True,
              help="Projection to 2-D (umap needs: pip install umap-learn).")
@click.option("--limit", type=click.IntRange(min=2), default=20_000, show_default=True,
              help="Map a seeded random sample of this many faces when there are more.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")
@click.option("--thumb", type=click.IntRange(16, 150), default=64, show_default=True,
              help="Thumbnail size in pixels.")
@output_options
def map_command(db, output, method, limit, seed, thumb, quiet, as_json):
    """A 2-D map of the faces, coloured by person, with face thumbnails (HTML and PNG)."""
    from facecluster.explore.embedding_map import write_map

    with friendly_errors():
        summary = write_map(_existing_store(db), output, method, limit, seed, thumb)
    emit(as_json, quiet, summary, "\n".join([
        f"{method.upper()} map of {summary['note']}, {plural(summary['people'], 'person')}",
        f"Page: {summary['html']}", f"Picture: {summary['png']}"]))


@click.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
              show_default=True, help="Store file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML page to write; PNG and GraphML files of the same name go beside it.")
@click.option("--people", is_flag=True, help="One node per person instead of per face.")
@click.option("-k", "--neighbours", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Edges only to each face's k nearest neighbours.")
@click.option("--threshold", type=POSITIVE, default=None,
              help="Edges only below this L2 distance [default: calibrated on the store].")
@click.option("--limit", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Use a seeded random sample of this many faces when there are more.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")
@click.option("--thumb", type=click.IntRange(16, 150), default=64, show_default=True,
              help="Thumbnail size in pixels.")
@output_options
def graph(db, output, people, k, threshold, limit, seed, thumb, quiet, as_json):
    """Faces (or people) as nodes joined by confident matches (HTML, PNG and GraphML)."""
    from facecluster.explore.face_graph import write_graph

    with friendly_errors():
        summary = write_graph(_existing_store(db), output, people, k, threshold, limit, seed, thumb)
    t = summary["threshold"]
    emit(as_json, quiet, summary, "\n".join([
        f"{plural(summary['nodes'], 'person' if people else 'face')} ({summary['note']}), "
        f"{plural(summary['edges'], 'confident edge')}",
        f"Edges: among each node's {k} nearest, L2 <= {t['value']:.3f} ({t['source']}: {t['note']})",
        f"Page: {summary['html']}", f"Picture: {summary['png']}", f"GraphML: {summary['graphml']}"]))


def register(main: click.Group) -> None:
    """Add the exploring commands to the ``facecluster`` group."""
    for command in (similar, find, compare, map_command, graph):
        main.add_command(command)
