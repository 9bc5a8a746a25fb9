"""Look-alike search: rank stored faces and people by their distance to a query face.

A query photo is detected, aligned and embedded exactly like the store's photos
(:func:`facecluster.scan.find_faces`), then compared with every stored face of the same
embedding model. Two faces are called "the same person" only at a stated false-accept rate
(:func:`calibrate`): the threshold on the L2 distance is read off the store's own pairs of
faces that are certainly or by its clustering different people (two faces in one photo; faces
of different people or gallery identities), so that at most 1 in 1,000 of them (at 95%
confidence) falls within it. A store with too few such pairs gets the lower of dlib's 0.6 and
its closest pair, with the weaker rate those pairs can show; a store with none, dlib's 0.6 with
the rate stated as unknown.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.spatial.distance import pdist
from scipy.stats import beta

from facecluster.scan import ScanOptions
from facecluster.store import FaceRecord, Store

# Published operating points: (threshold, where it comes from), by embedder model_id.
PUBLISHED_THRESHOLDS = {
    "dlib_resnet_v1": (0.6, "dlib's published operating point for its ResNet (99.38% of LFW pairs right)"),
}
FALLBACK_THRESHOLD = 0.6
FALSE_ACCEPT = 1e-3  # "same person" accepts at most 1 in 1,000 pairs of different people ...
CONFIDENCE = 0.95  # ... at this confidence (a one-sided upper bound from the pairs measured)
CALIBRATION_FACES = 3000  # larger stores are subsampled (seeded) before the O(n^2) pairs
# A search (find, similar) calls a person a match when this many of their photos are within the
# threshold (all of them when they have fewer): one photo of a stranger can look like anyone
# by chance, two rarely both do.
SEARCH_PHOTOS = 2


class QueryError(ValueError):
    """The query photo cannot be used as asked; the message says why and what to do."""


class AmbiguousFace(QueryError):
    """The query photo has several faces and the user did not say which (or said one it lacks)."""


@dataclass
class Threshold:
    """A "same person" threshold on the L2 distance, the false-accept rate it keeps, and where
    both come from.

    ``source`` is ``store`` (read off the store's pairs of different people), ``published``
    (the embedder's operating point: the store has no such pairs) or ``given`` (the user's
    ``--threshold``). ``false_accept`` is the upper bound, at ``confidence``, of the share of
    different-person pairs at or below ``value``, from the ``accepted`` of ``pairs`` measured
    (``photo_pairs`` of them two faces of one photo); None when nothing was measured.
    ``target`` is the rate asked for.

    ``unit`` says what the rate is of: ``pairs`` (:func:`calibrate`, for ``compare``: two
    faces) or ``searches`` (:func:`calibrate_search`, for ``find`` and ``similar``: a face of
    someone not in the store searched among all of its faces, a match being ``photos`` faces of
    one person within the threshold); ``pairs`` then counts the faces searched, and
    ``pair_false_accept`` is the pair rate of a search threshold lowered to the pairs' one.
    """

    value: float
    source: str
    note: str
    false_accept: float | None = None
    pairs: int = 0
    accepted: int = 0
    photo_pairs: int = 0
    target: float = FALSE_ACCEPT
    confidence: float = CONFIDENCE
    unit: str = "pairs"
    photos: int = 1
    pair_false_accept: float | None = None


@dataclass
class Collection:
    """Faces to search: embeddings with their photo, box and label (a person or an identity).

    ``people`` holds the store's person id per face (-1: none); ``labels`` the display name
    (export folder name, or gallery identity folder), None for unknown faces; ``shots`` a
    number per photo (per frame, for videos and animations): faces sharing one are different
    people.
    """

    face_ids: np.ndarray
    X: np.ndarray
    photos: list[str]
    boxes: list[tuple[int, int, int, int]]
    labels: list[str | None]
    people: np.ndarray
    kind: str  # "clustering" or "gallery"
    db: Path = field(default_factory=Path)
    shots: np.ndarray | None = None


# -- the query --------------------------------------------------------------------------------
def store_scan_options(store: Store) -> ScanOptions:
    """The options a store was scanned with (so a query is embedded the same way).

    Examples
    --------
    >>> store_scan_options(Store("faces.db")).embedder  # doctest: +SKIP
    'dlib'
    """
    recorded = store.meta("scan_options")
    if not recorded:
        return ScanOptions()
    try:
        return ScanOptions(**dict(ast.literal_eval(recorded)))
    except (ValueError, SyntaxError, TypeError):
        return ScanOptions()


def store_model(store: Store) -> str:
    """The embedder model_id most of the store's faces carry.

    Raises
    ------
    QueryError
        When the store holds no faces.
    """
    row = store.db.execute("SELECT model, COUNT(*) n FROM faces WHERE model IS NOT NULL"
                           " GROUP BY model ORDER BY n DESC LIMIT 1").fetchone()
    if row is None:
        raise QueryError(f"{store.path} holds no faces; run facecluster scan first")
    return row[0]


def query_faces(photo: str | os.PathLike, options: ScanOptions) -> list[FaceRecord]:
    """Every face of ``photo``, detected and embedded like a scanned photo.

    Raises
    ------
    QueryError
        When the photo cannot be read or holds no face.

    Examples
    --------
    >>> faces = query_faces("obama.jpg", ScanOptions())  # doctest: +SKIP
    >>> len(faces), faces[0].embedding.shape  # doctest: +SKIP
    (1, (128,))
    """
    from facecluster.media import MediaError
    from facecluster.scan import find_faces

    try:
        faces, _ = find_faces(photo, *_models(options.detector, options.embedder, options.jitter),
                              options)
    except MediaError as exc:
        raise QueryError(f"cannot read {photo}: {exc}") from None
    if not faces:
        raise QueryError(f"no face found in {photo} (try --detector cnn for small or turned faces)")
    return faces


@functools.lru_cache(maxsize=2)
def _models(detector: str, embedder: str, jitter: int):
    """Detector and embedder, loaded once per process (compare embeds two photos)."""
    from facecluster.detect import get_detector
    from facecluster.embed import get_embedder

    return get_detector(detector or "hog"), get_embedder(embedder, jitter)


def describe_faces(faces: list[FaceRecord]) -> str:
    """One line per face: its number for ``--face``, box and size.

    Examples
    --------
    >>> print(describe_faces(faces))  # doctest: +SKIP
      --face 1: 212x212 px at (426, 214), score 2.01
    """
    return "\n".join(f"  --face {i}: {f.box[2] - f.box[0]}x{f.box[3] - f.box[1]} px at "
                     f"({f.box[0]}, {f.box[1]}), score {f.score:.2f}"
                     for i, f in enumerate(faces, start=1))


def pick_face(faces: list[FaceRecord], face: int | None = None, largest: bool = False,
              photo: str = "the photo", option: str = "--face") -> FaceRecord:
    """The face the user means: the only one, number ``face`` (1-based) or the largest.

    Raises
    ------
    AmbiguousFace
        When several faces were found and neither ``face`` nor ``largest`` says which, or
        ``face`` is out of range; the message lists the faces.

    Examples
    --------
    >>> pick_face(faces, largest=True).box  # doctest: +SKIP
    (426, 214, 638, 426)
    """
    if face is not None:
        if not 1 <= face <= len(faces):
            raise AmbiguousFace(f"{option} {face}: {photo} has {len(faces)} face(s):\n{describe_faces(faces)}")
        return faces[face - 1]
    if len(faces) == 1:
        return faces[0]
    if largest:
        return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    raise AmbiguousFace(f"{photo} has {len(faces)} faces; say which with {option} N or --largest:\n"
                     f"{describe_faces(faces).replace('--face ', option + ' ')}")


# -- distances and the threshold --------------------------------------------------------------
def distances(query: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2 and cosine distances (1 - cosine similarity) from ``query`` to each row of ``X``.

    Examples
    --------
    >>> distances(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    (array([0.        , 2.23606798]), array([0., 1.]))
    """
    query = np.asarray(query, np.float64)
    X = np.asarray(X, np.float64).reshape(-1, len(query))
    l2 = np.linalg.norm(X - query, axis=1)
    norms = np.linalg.norm(X, axis=1) * np.linalg.norm(query)
    cosine = 1.0 - (X @ query) / np.maximum(norms, 1e-12)
    return l2, np.clip(cosine, 0.0, 2.0)


def between_pairs(X: np.ndarray, labels, shots=None, limit: int = CALIBRATION_FACES,
                  seed: int = 0) -> tuple[np.ndarray, int]:
    """Sorted L2 distances of the pairs of faces that are different people, and how many of
    them are two faces of one photo.

    A pair counts when both faces are labelled and the labels differ, or when both faces share
    a shot (one photo, or one frame of a video): those are different people whatever the
    labels say. Faces that can be in no such pair are left out; above ``limit`` faces a
    seeded sample is used.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [1.0], [3.0]])
    >>> between_pairs(X, ["a", "a", "b", None], shots=[0, 1, 2, 2])
    (array([0.9, 1. , 2. ]), 1)
    """
    people = _codes(labels)
    shots = _codes(range(len(people)) if shots is None else shots)
    shared = np.bincount(shots)[shots] > 1
    keep = np.flatnonzero((people >= 0) | shared)
    if len(keep) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(keep, limit, replace=False))
    people, shots = people[keep], shots[keep]
    i, j = np.triu_indices(len(keep), k=1)
    d = pdist(np.asarray(X, np.float64)[keep])  # condensed: the same (i, j) order as triu_indices
    one_photo = shots[i] == shots[j]
    between = one_photo | ((people[i] >= 0) & (people[j] >= 0) & (people[i] != people[j]))
    return np.sort(d[between]), int(one_photo.sum())


def _codes(values) -> np.ndarray:
    """An integer per distinct value, numbered in sorted order of their text (None: -1)."""
    values = list(values)
    known = [v is not None for v in values]
    codes = np.full(len(values), -1)
    if any(known):
        codes[known] = np.unique(np.array([str(v) for v, k in zip(values, known) if k], dtype=object),
                                 return_inverse=True)[1]
    return codes


def false_accept_bound(accepted: int, pairs: int, confidence: float = CONFIDENCE) -> float | None:
    """Upper bound, at ``confidence``, of the share of different-person pairs a threshold
    accepts, when it accepted ``accepted`` of ``pairs`` measured (one-sided Clopper-Pearson);
    None without pairs.

    Examples
    --------
    >>> round(false_accept_bound(0, 2995), 6), round(false_accept_bound(0, 100), 4)
    (0.001, 0.0295)
    """
    if pairs <= 0:
        return None
    if accepted >= pairs:
        return 1.0
    return float(beta.ppf(confidence, accepted + 1, pairs - accepted))


def pairs_needed(rate: float = FALSE_ACCEPT, confidence: float = CONFIDENCE) -> int:
    """The fewest different-person pairs that can show a false-accept rate of at most ``rate``
    (none of them accepted).

    Examples
    --------
    >>> pairs_needed(1e-3), pairs_needed(1e-2)
    (2995, 299)
    """
    return math.ceil(math.log(1 - confidence) / math.log1p(-rate))


def threshold_at_rate(between: np.ndarray, rate: float = FALSE_ACCEPT,
                      confidence: float = CONFIDENCE) -> float | None:
    """The largest threshold (4 decimals) whose false-accept bound, measured on the
    different-person distances ``between``, is at most ``rate``; None when they are too few
    (fewer than :func:`pairs_needed`).

    The threshold lies just below the (a+1)-th smallest distance, a being the most accepted
    pairs whose bound is still within ``rate``.

    Examples
    --------
    >>> between = np.linspace(0.5, 1.5, 10_000)
    >>> threshold_at_rate(between), threshold_at_rate(between[:100])
    (0.5004, None)
    """
    between = np.sort(np.asarray(between, np.float64))
    n = len(between)
    accepted = np.arange(0, min(n, int(2 * n * rate) + 20))
    bounds = beta.ppf(confidence, accepted + 1, n - accepted)
    allowed = accepted[bounds <= rate]
    if not len(allowed):
        return None
    return _just_below(between[allowed.max()])


def _just_below(x: float) -> float:
    """The largest multiple of 0.0001 strictly below ``x``."""
    value = math.floor(x * 1e4) / 1e4
    return round(value - 1e-4 if value >= x else value, 4)


def equal_error_threshold(within: np.ndarray, between: np.ndarray) -> tuple[float, float]:
    """The threshold where the share of within-person pairs rejected (distance above it)
    equals the share of between-person pairs accepted (at or below it), and that rate.

    Not what the commands use (at the equal-error point about one pair of different people
    in 50 is called the same person: :func:`calibrate` keeps that to 1 in 1,000); kept to
    compare with.

    Thresholds are tried half-way between consecutive observed distances, so separable
    distributions get the middle of the gap.

    Examples
    --------
    >>> equal_error_threshold(np.array([0.2, 0.3, 0.4]), np.array([0.7, 0.8, 0.9]))
    (0.55, 0.0)
    """
    within, between = np.sort(within), np.sort(between)
    values = np.unique(np.concatenate([within, between]))
    candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    false_reject = 1 - np.searchsorted(within, candidates, side="right") / len(within)
    false_accept = np.searchsorted(between, candidates, side="right") / len(between)
    worst = np.maximum(false_reject, false_accept)
    best = np.flatnonzero(worst == worst.min())
    middle = best[len(best) // 2]
    return round(float(candidates[middle]), 4), round(float(worst[middle]), 4)


def published_threshold(model_id: str) -> tuple[float, str]:
    """The embedder's published operating point, or 0.6 with a warning for unknown models.

    Examples
    --------
    >>> published_threshold("dlib_resnet_v1")[0]
    0.6
    """
    if model_id in PUBLISHED_THRESHOLDS:
        return PUBLISHED_THRESHOLDS[model_id]
    return FALLBACK_THRESHOLD, f"no published operating point for {model_id}; using dlib's 0.6"


def calibrate(X: np.ndarray, labels, model_id: str, what: str = "the store", shots=None,
              given: float | None = None, rate: float = FALSE_ACCEPT) -> Threshold:
    """The "same person" threshold for these faces, and the false-accept rate it keeps.

    From the store's pairs of different people (:func:`between_pairs`): the threshold at
    ``rate`` (:func:`threshold_at_rate`); with too few pairs, the lower of the published point
    and just below the closest pair; with none, the published point (rate unknown). A
    ``given`` threshold is kept, and its rate measured on the same pairs.

    Examples
    --------
    >>> t = calibrate(X, labels, "dlib_resnet_v1", shots=shots)  # doctest: +SKIP
    >>> t.value, t.false_accept, t.pairs  # doctest: +SKIP
    (0.5798, 0.0009, 5266)
    """
    between, in_photo = between_pairs(X, labels, shots)
    if given is not None:
        value, source = float(given), "given"
    elif not len(between):
        return published(model_id, f"{what} has no pairs of faces of different people", rate)
    else:
        value, source = threshold_at_rate(between, rate), "store"
        if value is None:
            value = min(published_threshold(model_id)[0], _just_below(between[0]))
    accepted = int(np.searchsorted(between, value, side="right"))
    threshold = Threshold(value, source, "", false_accept_bound(accepted, len(between)),
                          len(between), accepted, in_photo, rate)
    threshold.note = rate_note(threshold, what)
    return threshold


def kth_nearest_per_group(D: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """For each row of ``D`` (distances to the columns) and each group (``groups``: a code
    0..g-1 per column), the ``k``-th smallest distance to the group's columns, or its largest
    when the group has fewer: shape (rows, g).

    Examples
    --------
    >>> D = np.array([[0.1, 0.5, 0.3, 0.9]])
    >>> kth_nearest_per_group(D, np.array([0, 0, 0, 1]), 2)
    array([[0.3, 0.9]])
    """
    order = np.argsort(groups, kind="stable")
    return _nearest_levels(D[:, order], np.bincount(groups), k)[-1]


def _nearest_levels(ordered: np.ndarray, sizes: np.ndarray, k: int) -> list[np.ndarray]:
    """[nearest, second nearest, ..., k-th nearest] per group, for columns already grouped
    (``sizes`` columns each, in order); a group with fewer columns repeats its largest."""
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    segment = np.repeat(np.arange(len(sizes)), sizes)
    levels = [np.minimum.reduceat(ordered, starts, axis=1)]
    for _ in range(k - 1):  # take out each group's nearest, then look again
        ordered = np.where(ordered <= levels[-1][:, segment], np.inf, ordered)
        nearer = np.minimum.reduceat(ordered, starts, axis=1)
        levels.append(np.where(np.isfinite(nearer), nearer, levels[-1]))
    return levels


def search_distances(X: np.ndarray, labels, photos: int = SEARCH_PHOTOS,
                     limit: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """Sorted: what a search for someone not in the collection finds, measured by searching
    each labelled face (a seeded sample of ``limit``) among the faces of everyone else: the
    distance within which ``photos`` faces of one other person are (the nearest such person's
    ``photos``-th nearest face). Empty with fewer than two people.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [1.0], [1.2], [3.0]])
    >>> search_distances(X, ["a", "a", "b", "b", None], photos=2).round(4)
    array([1. , 1.1, 1.2, 1.2])
    """
    return search_samples(X, labels, (photos,), limit, seed)[photos]


def search_samples(X: np.ndarray, labels, counts: tuple[int, ...] = (SEARCH_PHOTOS, 1),
                   limit: int = CALIBRATION_FACES, seed: int = 0) -> dict[int, np.ndarray]:
    """:func:`search_distances` for each number of photos in ``counts``, in one pass over
    the faces (float32 distances, the columns grouped by person once)."""
    people = _codes(labels)
    labelled = np.flatnonzero(people >= 0)
    if len(np.unique(people[labelled])) < 2:
        return {k: np.zeros(0) for k in counts}
    groups = np.unique(people[labelled], return_inverse=True)[1]
    order = np.argsort(groups, kind="stable")
    columns, sizes = labelled[order], np.bincount(groups)
    queries = labelled
    if len(queries) > limit:
        queries = np.sort(np.random.default_rng(seed).choice(labelled, limit, replace=False))
    own = groups[np.searchsorted(labelled, queries)]
    faces = np.asarray(X, np.float32)[columns]
    squared = np.einsum("ij,ij->i", faces, faces)
    block = max(1, (1 << 24) // len(columns))
    found = {k: [] for k in counts}
    for lo in range(0, len(queries), block):
        rows = np.asarray(X, np.float32)[queries[lo:lo + block]]
        D = np.sqrt(np.maximum(np.einsum("ij,ij->i", rows, rows)[:, None] + squared[None, :]
                               - 2 * rows @ faces.T, 0))
        levels = _nearest_levels(D, sizes, max(counts))
        for k in counts:
            per_person = levels[k - 1].copy()
            per_person[np.arange(len(rows)), own[lo:lo + block]] = np.inf
            found[k].append(per_person.min(axis=1))
    return {k: np.sort(np.concatenate(v)).astype(np.float64) for k, v in found.items()}


def calibrate_search(X: np.ndarray, labels, model_id: str, what: str = "the store",
                     given: float | None = None, photos: int = SEARCH_PHOTOS,
                     rate: float = FALSE_ACCEPT, pairs: Threshold | None = None,
                     nearest: np.ndarray | None = None) -> Threshold:
    """The threshold of a search (``find``, ``similar``): a face of someone not in the
    collection is matched to a person (``photos`` of their faces within it) in at most
    ``rate`` of searches, measured by :func:`search_distances`; with too few faces, the lower
    of the published point and just below the closest; with fewer than two people, the
    published point (rate unknown). Never above ``pairs`` (:func:`calibrate` on the same
    faces), so that two faces it calls one person also keep the pair rate. A ``given``
    threshold is kept and its rate measured. ``nearest``: :func:`search_distances`, when
    already measured (:func:`search_samples`).

    Examples
    --------
    >>> t = calibrate_search(X, labels, "dlib_resnet_v1")  # doctest: +SKIP
    >>> t.value, t.unit, t.photos  # doctest: +SKIP
    (0.5797, 'searches', 2)
    """
    nearest = search_distances(X, labels, photos) if nearest is None else nearest
    if given is not None:
        value, source = float(given), "given"
    elif not len(nearest):
        threshold = published(model_id, f"{what} has fewer than two people to measure it on", rate)
        threshold.unit, threshold.photos = "searches", photos
        return threshold
    else:
        value = threshold_at_rate(nearest, rate)
        source = "store"
        if value is None:
            value = min(published_threshold(model_id)[0], _just_below(nearest[0]))
    lowered = given is None and pairs is not None and pairs.false_accept is not None and pairs.value < value
    if lowered:
        value = pairs.value
    accepted = int(np.searchsorted(nearest, value, side="right"))
    threshold = Threshold(value, source, "", false_accept_bound(accepted, len(nearest)),
                          len(nearest), accepted, 0, rate, unit="searches", photos=photos,
                          pair_false_accept=pairs.false_accept if lowered else None)
    threshold.note = rate_note(threshold, what)
    return threshold


def rate_note(threshold: Threshold, what: str) -> str:
    """What a threshold accepts, measured where: the sentence every command prints."""
    t = threshold
    if t.unit == "searches":
        return _search_note(t, what)
    if t.false_accept is None:
        return f"--threshold {t.value}; its false-accept rate is unknown: {what} has no pairs to measure it"
    of = " of" if t.false_accept >= 0.1 else ""
    rate = (f"accepts at most {share(t.false_accept)}{of} different-person pairs "
            f"({t.confidence:.0%} confidence)")
    pairs = (f"{t.pairs:,} pairs of different people in {what}, "
             f"{t.photo_pairs:,} of them two faces of one photo")
    if t.source == "given":
        return f"--threshold {t.value} {rate}: {t.accepted:,} of {pairs} are within it"
    return _measured(t, rate, pairs, "those pairs")


def _search_note(t: Threshold, what: str) -> str:
    if t.false_accept is None:
        return f"how often a stranger comes within {t.value} is unknown: no store to measure it on"
    of = " of" if t.false_accept >= 0.1 else ""
    rate = (f"someone not in {what} is matched in at most {share(t.false_accept)}{of} searches "
            f"({t.confidence:.0%} confidence)")
    measured = f"{t.pairs:,} searches, one for each face of its people among everyone else's"
    if t.pair_false_accept is not None:
        return (f"{rate}, measured on {measured}; no looser than for two faces "
                f"(at most {share(t.pair_false_accept)} pairs of different people)")
    if t.source == "given":
        return f"--threshold {t.value}: {rate}; {t.accepted:,} of {measured} matched"
    return _measured(t, rate, measured, "them")


def _measured(t: Threshold, rate: str, measured: str, closest: str) -> str:
    """The rate and what it was measured on; with too few measurements, why the threshold is
    the lower of dlib's point and the closest of ``closest``."""
    if t.false_accept <= t.target:
        return f"{rate}, measured on {measured}"
    return (f"{rate}, measured on only {measured} ({pairs_needed(t.target, t.confidence):,} are needed "
            f"to show {share(t.target)}), so the threshold is the lower of dlib's "
            f"{FALLBACK_THRESHOLD} and the closest of {closest}")


def share(rate: float) -> str:
    """A rate in words: "1 in 1,000" (rounded down to two digits), or a percentage from 10%.

    Examples
    --------
    >>> share(0.001), share(0.000998), share(0.0161), share(0.776)
    ('1 in 1,000', '1 in 1,000', '1 in 62', '78%')
    """
    if rate >= 0.1:
        return f"{rate:.0%}"
    n = (1 / rate) * (1 + 1e-9)
    step = 10 ** max(0, int(math.log10(n)) - 1)
    return f"1 in {int(n // step * step):,}"


def given_threshold(value: float) -> Threshold:
    """The user's ``--threshold`` where there are no pairs to measure its rate on."""
    return Threshold(float(value), "given",
                     f"--threshold {value}; its false-accept rate is unknown without a store")


def published(model_id: str, why: str, rate: float = FALSE_ACCEPT) -> Threshold:
    """The embedder's published point, its false-accept rate unknown because of ``why``."""
    value, origin = published_threshold(model_id)
    return Threshold(value, "published", f"{origin}; its false-accept rate here is unknown: {why}",
                     target=rate)


# -- the collection ---------------------------------------------------------------------------
def load_store(db: str | os.PathLike, model_id: str) -> Collection:
    """The store's faces of embedder ``model_id``, labelled by their latest clustering.

    Labels are the folder names ``facecluster export`` writes (``person_0001`` or the name).

    Raises
    ------
    QueryError
        When the store holds no face of this embedder.
    """
    from facecluster.export import _folder_names, _groups

    with Store(db) as store:
        face_ids, _, X = store.embeddings(model=model_id)
        if not len(face_ids):
            models = sorted({r[0] for r in store.db.execute("SELECT DISTINCT model FROM faces")} - {None})
            held = (f"it holds {', '.join(models)}" if models
                    else "it holds no faces; run facecluster scan first")
            raise QueryError(f"{db} has no faces embedded with {model_id}: {held}")
        rows = {r["id"]: r for r in store.faces()}
        assigned = store.assignments()
        folders = _folder_names(_groups(store), store.people())
    people = np.array([assigned.get(int(f), (None, 0))[0] or -1 for f in face_ids])
    labels = [folders.get(int(p)) if p >= 0 else None for p in people]
    shots = _codes((rows[int(f)]["media_id"], rows[int(f)]["time"]) for f in face_ids)
    return Collection(face_ids, X, [rows[int(f)]["path"] for f in face_ids],
                      [_box(rows[int(f)]) for f in face_ids], labels, people, "clustering", Path(db),
                      shots)


def load_gallery(db: str | os.PathLike, root: str | os.PathLike, model_id: str) -> Collection:
    """A scanned gallery (``root/<identity>/<image>``): the largest face of each photo is
    labelled with its identity folder; other faces, and folders starting with ``_``, are not.

    Photos may be symlinks (an exported people folder is a gallery too): the store keeps
    resolved paths, so identities are read from the links' own paths.
    """
    from facecluster.media import find_photos

    root = Path(root)
    identity = {str(p.resolve()): identity_of(p, root) for p in find_photos(root)}
    collection = load_store(db, model_id)
    keep = [i for i, photo in enumerate(collection.photos) if photo in identity]
    largest: dict[str, int] = {}
    for i in keep:
        photo = collection.photos[i]
        if photo not in largest or _area(collection.boxes[i]) > _area(collection.boxes[largest[photo]]):
            largest[photo] = i
    labelled = set(largest.values())
    return Collection(collection.face_ids[keep], collection.X[keep],
                      [collection.photos[i] for i in keep], [collection.boxes[i] for i in keep],
                      [identity[collection.photos[i]] if i in labelled else None for i in keep],
                      np.full(len(keep), -1), "gallery", Path(db), collection.shots[keep])


def identity_of(photo: Path, root: Path) -> str | None:
    """The identity folder of a gallery photo: ``root/<identity>/.../<image>``.

    Examples
    --------
    >>> identity_of(Path("/g/madonna/1.jpg"), Path("/g"))
    'madonna'
    >>> identity_of(Path("/g/_multi/1.jpg"), Path("/g")) is None
    True
    """
    parts = photo.relative_to(root).parts
    if len(parts) < 2 or parts[0].startswith("_"):
        return None
    return parts[0]


def _box(row) -> tuple[int, int, int, int]:
    return (row["left"], row["top"], row["right"], row["bottom"])


def _area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def gallery_db(gallery: str | os.PathLike) -> Path:
    """Where a gallery's store is cached: one file per gallery folder in the user cache
    (``$FACECLUSTER_CACHE`` or ``~/.cache/facecluster``), never inside the user's photos.

    Examples
    --------
    >>> gallery_db("celebrities")  # doctest: +SKIP
    PosixPath('/home/me/.cache/facecluster/galleries/celebrities-5d41402abc4b.db')
    """
    from facecluster.embed.dlib_resnet import cache_dir

    gallery = Path(gallery).resolve()
    tag = hashlib.sha1(os.fsencode(gallery)).hexdigest()[:12]  # fsencode: any file name
    return cache_dir() / "galleries" / f"{gallery.name}-{tag}.db"


def scan_gallery(gallery: str | os.PathLike, db: str | os.PathLike, options: ScanOptions,
                 workers: int | None = None, quiet: bool = True) -> Path:
    """Scan (incrementally) a gallery folder into its cached store; returns the store path."""
    from facecluster.scan import scan

    scan(gallery, db, options, workers=workers, quiet=quiet)
    return Path(db)


# -- ranking ----------------------------------------------------------------------------------
def rank_faces(query: np.ndarray, collection: Collection, threshold: float, top: int | None = None,
               skip_photo: str | None = None) -> list[dict]:
    """The ``top`` stored faces nearest to ``query``, nearest first, with both distances and
    the same-person verdict; faces of ``skip_photo`` (the query photo itself) are left out.

    Examples
    --------
    >>> rank_faces(face.embedding, collection, 0.55, top=1)  # doctest: +SKIP
    [{'rank': 1, 'face_id': 3, 'photo': '.../obama2.jpg', 'label': 'person_0001',
      'l2': 0.31, 'cosine': 0.05, 'same_person': True, ...}]
    """
    l2, cosine = distances(query, collection.X)
    order = np.argsort(l2, kind="stable")
    if skip_photo is not None:
        skip = str(Path(skip_photo).resolve())
        order = np.array([i for i in order if collection.photos[i] != skip], int)
    order = order[:top] if top else order
    return [{"rank": rank, "face_id": int(collection.face_ids[i]), "photo": collection.photos[i],
             "box": list(collection.boxes[i]), "label": collection.labels[i],
             "person_id": int(collection.people[i]) if collection.people[i] >= 0 else None,
             "l2": round(float(l2[i]), 4), "cosine": round(float(cosine[i]), 4),
             "same_person": bool(l2[i] <= threshold)}
            for rank, i in enumerate(order, start=1)]


def rank_identities(query: np.ndarray, collection: Collection, threshold: float,
                    top: int | None = None, skip_photo: str | None = None,
                    photos: int = SEARCH_PHOTOS) -> list[dict]:
    """People (or gallery identities) ranked by ``match_l2``, the distance within which
    ``photos`` of their faces are (all, for one with fewer): a person is the same person as
    the query when it is within ``threshold`` (:func:`calibrate_search`). Also the nearest and
    the mean distance over all their faces (faces of ``skip_photo`` left out).

    Examples
    --------
    >>> rank_identities(face.embedding, collection, 0.55)[0]["label"]  # doctest: +SKIP
    'madonna'
    """
    l2, cosine = distances(query, collection.X)
    skip = str(Path(skip_photo).resolve()) if skip_photo is not None else None
    keep = np.array([bool(label) and photo != skip
                     for label, photo in zip(collection.labels, collection.photos)], bool)
    if not keep.any():
        return []
    names, group = np.unique(np.array(collection.labels, dtype=object)[keep].astype(str), return_inverse=True)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    levels = _nearest_levels(l2[keep][order][None, :], sizes, photos)
    match, best = (np.round(levels[-1][0], 4), np.round(levels[0][0], 4))
    mean = np.round(np.bincount(group, l2[keep]) / sizes, 4)
    best_cosine = np.round(np.minimum.reduceat(cosine[keep][order], starts), 4)
    mean_cosine = np.round(np.bincount(group, cosine[keep]) / sizes, 4)
    people = collection.people[keep][order]
    low, high = np.minimum.reduceat(people, starts), np.maximum.reduceat(people, starts)
    ranked = []
    for rank, g in enumerate(np.lexsort((mean, best, match)), start=1):
        ranked.append({"rank": rank, "label": str(names[g]), "faces": int(sizes[g]),
                       "person_id": int(low[g]) if low[g] == high[g] and low[g] >= 0 else None,
                       "match_l2": float(match[g]), "best_l2": float(best[g]), "mean_l2": float(mean[g]),
                       "best_cosine": float(best_cosine[g]), "mean_cosine": float(mean_cosine[g]),
                       "same_person": bool(levels[-1][0][g] <= threshold)})
    return ranked[:top] if top else ranked


# -- pictures ---------------------------------------------------------------------------------
def match_montage(query_chip: bytes, chips: list[bytes], captions: list[str],
                  columns: int = 6, size: int = 150) -> Image.Image:
    """One sheet: the query chip first (outlined), then each match with its caption below.

    Examples
    --------
    >>> match_montage(query.chip_jpeg, [store.chip(3)], ["L2 0.31"]).size  # doctest: +SKIP
    (300, 186)
    """
    tiles = [query_chip, *chips]
    texts = ["query", *captions]
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    caption = 36
    sheet = Image.new("RGB", (columns * size, rows * (size + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    for n, (data, text) in enumerate(zip(tiles, texts)):
        x, y = (n % columns) * size, (n // columns) * (size + caption)
        sheet.paste(Image.open(io.BytesIO(data)).convert("RGB").resize((size, size)), (x, y))
        for line, words in enumerate(text.split("\n")[:2]):
            draw.text((x + 4, y + size + 3 + 16 * line), words, fill=(0, 0, 0), font=font)
    draw.rectangle((0, 0, size - 1, size - 1), outline=(220, 40, 40), width=4)
    return sheet


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()
