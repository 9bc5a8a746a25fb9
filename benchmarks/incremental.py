"""Adding new photos to a store of a million faces: the incremental clustering and the store.

    nice -n 10 python benchmarks/incremental.py [--size 1000000] [--initial truth|cluster]
                                                [--photos 1000] [--folder /tmp/fc-incremental]

1. Builds a store of ``--size`` synthetic faces with a fast bulk insert (kept in ``--folder``
   and reused by later runs with the same size and seed):

   * identities of Zipf sizes (the r-th most photographed person has about C / r faces; one
     identity per 10 faces, so the tail is people seen once or twice);
   * embeddings with dlib's measured geometry (on five_celebrity and nogizaka46 scans): a
     shared mean face of length 1.38; identity centres spread with a decaying spectrum
     (variance 0.20), faces around them with variance 0.12 (effective dimension ~30) times a
     per-identity factor; median distances come out ~0.48 within a person and ~0.81 between
     people (printed). How crowded a million faces' identities are (how near the nearest other
     person comes) is not measurable on the small development sets: ``--between-decay``
     sets it (the spectrum of the centres falls as 1 / (k + 1) ** decay; the default 0.75, an
     effective dimension of ~50, gives the default full clustering BCubed F ~0.89 at 100,000
     faces; 1.0, ~18 dimensions, is far more crowded);
   * photos of one to three faces of different people;
   * chips: stand-in blobs of random bytes (incompressible, as JPEG is) with the size of real
     150 px JPEG chips (mean and spread measured on a real scan: ``--chip-bytes``), every other
     column as a scan writes it.

2. Clusters it once: ``--initial cluster`` runs the default full clustering (feasible up to
   about 100,000 faces for now); ``--initial truth`` saves the true identities (people of two
   faces or more; the rest unknown) through the same save path, as a clustering by the
   default algorithm, so that a million-face store can be measured while full clustering at
   that size is still being made fast.

3. Scans ``--photos`` new photos in (the store's normal save path): 90% of their faces are
   people already in the store (chosen in proportion to their number of faces), 10% are
   strangers (some of them in two to four new photos), and runs ``facecluster cluster``
   (``api.cluster``), which adds them incrementally.

Prints one table: store size, size per million faces, the time to read every embedding (and
every face's photo and box, sorted), the time of the incremental clustering, and how many new
faces of known people joined the right person (the person holding most of their identity's
faces), joined a wrong one, or stayed out; and how many strangers' faces joined someone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from facecluster import api
from facecluster.cluster import get_clusterer
from facecluster.cluster.collection import (
    membership_confidence,
    run_record,
    stable_faces,
)
from facecluster.store import FaceRecord, Store
from facecluster.store.people import save_clustering

D = 128
MODEL = "dlib_resnet_v1"
MEAN_NORM = 1.38                 # length of the mean dlib face (five_celebrity, nogizaka46)
BETWEEN, BETWEEN_DECAY = 0.20, 0.75  # variance of identity centres, spectrum ~ 1 / (k + 1) ** 0.75
WITHIN, WITHIN_DECAY = 0.12, 0.5     # variance of a person's faces, spectrum ~ 1 / sqrt(k + 1)
CHIP_BYTES = (6560, 450)         # mean and spread of a 150 px JPEG chip (nogizaka46 scan)
FACES_PER_PHOTO = ([1, 2, 3], [0.7, 0.2, 0.1])


class Population:
    """Identities and faces with dlib's geometry (see the module docstring)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rotate_between = np.linalg.qr(rng.normal(size=(D, D)))[0]
        self.rotate_within = np.linalg.qr(rng.normal(size=(D, D)))[0]
        direction = rng.normal(size=D)
        self.mean = MEAN_NORM * direction / np.linalg.norm(direction)
        self.between = np.sqrt(_spectrum(BETWEEN, BETWEEN_DECAY))
        self.within = np.sqrt(_spectrum(WITHIN, WITHIN_DECAY))

    def identities(self, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """(centres, spread factors) of ``count`` new identities."""
        centres = self.mean + (rng.normal(size=(count, D)) * self.between) @ self.rotate_between.T
        return centres, rng.lognormal(0, 0.15, size=count)

    def faces(self, centres, spreads, identity, rng) -> np.ndarray:
        noise = (rng.normal(size=(len(identity), D)) * self.within) @ self.rotate_within.T
        return (centres[identity] + spreads[identity, None] * noise).astype(np.float32)


def _spectrum(total: float, decay: float) -> np.ndarray:
    values = 1.0 / np.arange(1, D + 1) ** decay
    return total * values / values.sum()


def zipf_sizes(n: int, identities: int, exponent: float = 1.0) -> np.ndarray:
    """Faces per identity, largest first: about C / rank ** exponent (at least 1), summing to n."""
    ranks = np.arange(1, identities + 1)
    low, high = 0.0, float(n)
    for _ in range(60):
        c = (low + high) / 2
        total = np.maximum(1, np.round(c / ranks ** exponent)).sum()
        low, high = (c, high) if total < n else (low, c)
    sizes = np.maximum(1, np.round(high / ranks ** exponent)).astype(np.int64)
    sizes[0] += n - sizes.sum()
    return sizes


def photos_of(identity: np.ndarray, rng) -> np.ndarray:
    """A photo index per face: photos of one to three faces, never one identity twice."""
    order = rng.permutation(len(identity))
    sizes = rng.choice(FACES_PER_PHOTO[0], size=len(identity), p=FACES_PER_PHOTO[1])
    photo = np.repeat(np.arange(len(sizes)), sizes)[:len(identity)]
    shuffled = identity[order]
    key = photo * (int(identity.max()) + 1) + shuffled
    _, first = np.unique(key, return_index=True)
    again = np.setdiff1d(np.arange(len(key)), first)  # the same identity twice in a photo
    photo[again] = photo.max() + 1 + np.arange(len(again))
    result = np.empty_like(photo)
    result[order] = photo
    return np.unique(result, return_inverse=True)[1].ravel()


# -- building the store ---------------------------------------------------------------------------

def build(folder: Path, size: int, seed: int, chip: tuple[int, int]) -> tuple[Path, dict]:
    """The synthetic store and its truth (reused when already built)."""
    db = folder / f"faces-{size}-{seed}-{BETWEEN_DECAY:g}.db"
    truth_file = db.with_suffix(".npz")
    if db.exists() and truth_file.exists():
        truth = dict(np.load(truth_file))
        return db, truth
    for stale in (db, truth_file, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    population = Population(seed)
    sizes = zipf_sizes(size, max(size // 10, 2))
    centres, spreads = population.identities(len(sizes), rng)
    identity = np.repeat(np.arange(len(sizes)), sizes)
    photo = photos_of(identity, rng)
    started = time.perf_counter()
    Store(db).close()  # the schema, with its indexes
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    pool = _chips(rng, chip)
    con.execute("BEGIN")
    con.executemany("INSERT INTO media (id, path, kind, size, mtime, hash, width, height, status)"
                    " VALUES (?, ?, 'photo', ?, 0, ?, 1600, 1200, 'ok')",
                    ((int(p) + 1, f"/synthetic/{p // 1000:04d}/{p:08d}.jpg", 2_000_000, f"{p:064x}")
                     for p in range(int(photo.max()) + 1)))
    for start in range(0, size, 50_000):
        part = np.arange(start, min(size, start + 50_000))
        X = population.faces(centres, spreads, identity[part], rng)
        con.executemany("INSERT INTO faces (id, media_id, left, top, right, bottom, score, detector,"
                        " landmarks, sharpness, chip, model, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        _face_rows(part, photo, X, pool, rng))
    con.execute("COMMIT")
    con.close()
    truth = {"identity": identity, "centres": centres, "spreads": spreads, "seconds": time.perf_counter() - started}
    np.savez(truth_file, **truth)
    return db, truth


def _chips(rng, chip: tuple[int, int], count: int = 1000) -> list[bytes]:
    lengths = np.clip(rng.normal(chip[0], chip[1], count), 1000, None).astype(int)
    return [rng.bytes(int(n)) for n in lengths]


def _face_rows(part, photo, X, pool, rng):
    lefts = rng.integers(0, 1400, len(part))
    widths = rng.integers(60, 200, len(part))
    for k, face in enumerate(part):
        left, width = int(lefts[k]), int(widths[k])
        marks = json.dumps([[left + width * a // 5, 300 + width * b // 5] for a, b in
                            ((4, 1), (3, 1), (1, 1), (2, 1), (2, 4))])
        yield (int(face) + 1, int(photo[face]) + 1, left, 300, left + width, 300 + width, 1.2, "hog",
               marks, 500.0, pool[k % len(pool)], MODEL, X[k].tobytes())


def initial_clustering(db: Path, truth: dict, how: str) -> float:
    """Cluster the store once (see --initial); returns seconds."""
    started = time.perf_counter()
    if how == "cluster":
        api.cluster(db)
        return time.perf_counter() - started
    with Store(db) as store:
        face_ids, X, _, _ = stable_faces(store)
        identity = truth["identity"][face_ids - 1]
        sizes = np.bincount(identity)
        labels = np.where(sizes[identity] >= 2, identity, -1)
        clusterer = get_clusterer("graph")
        run_id = store.start_run("cluster", run_record(store, "graph", clusterer.get_params()))
        save_clustering(store, face_ids, labels, membership_confidence(X, labels), run_id, {})
        store.finish_run(run_id, {"initial": "truth"})
    return time.perf_counter() - started


def add_photos(db: Path, truth: dict, photos: int, seed: int, chip) -> tuple[np.ndarray, np.ndarray, float]:
    """Save ``photos`` new photos through Store.save_media; returns (face ids, identity, seconds).
    Strangers' identities are numbered from len(truth sizes)."""
    rng = np.random.default_rng(seed + 1)
    population = Population(seed)
    sizes = np.bincount(truth["identity"])
    counts = rng.choice(FACES_PER_PHOTO[0], size=photos, p=FACES_PER_PHOTO[1])
    strangers = max(1, int(0.1 * counts.sum()) // 2)
    centres, spreads = population.identities(strangers, rng)
    centres = np.vstack([truth["centres"], centres])
    spreads = np.r_[truth["spreads"], spreads]
    pool = _chips(rng, chip, 50)
    ids, who = [], []
    started = time.perf_counter()
    with Store(db) as store:
        for k, count in enumerate(counts):
            people = set()
            while len(people) < count:
                if rng.random() < 0.9:
                    people.add(int(rng.choice(len(sizes), p=sizes / sizes.sum())))
                else:
                    people.add(len(sizes) + int(rng.integers(strangers)))
            people = sorted(people)
            X = population.faces(centres, spreads, np.array(people), rng)
            faces = [FaceRecord(box=(100 + 300 * i, 300, 250 + 300 * i, 450), score=1.2, detector="hog",
                                landmarks=[[0, 0]] * 5, sharpness=500.0, chip_jpeg=pool[i], model=MODEL,
                                embedding=X[i]) for i in range(len(people))]
            store.save_media(f"/synthetic/new/{seed}/{k:06d}.jpg", size=1, mtime=1, digest=None,
                             run_id=None, faces=faces)
            ids += [f.id for f in faces]
            who += people
    return np.array(ids), np.array(who), time.perf_counter() - started


def quality(db: Path, truth: dict) -> float:
    """BCubed F of the store's people against the true identities (unknown: one face each)."""
    from facecluster.evaluate.metrics import bcubed_prf

    with Store(db) as store:
        assigned = dict(store._bulk("SELECT face_id, IFNULL(person_id, -1) FROM assignments"))
    person = np.array([assigned.get(i + 1, -1) for i in range(len(truth["identity"]))])
    return bcubed_prf(truth["identity"], person)[2]


def people_of(db: Path) -> dict[int, int | None]:
    with Store(db) as store:
        return dict(store._bulk("SELECT face_id, person_id FROM assignments"))


def judge(db: Path, truth: dict, new_ids: np.ndarray, who: np.ndarray, before: dict | None = None) -> dict:
    """How the new faces were placed, against the truth; the people of the old faces are
    ``before`` (the clustering the new faces were added to), else the store's now."""
    known_count = len(truth["spreads"])
    assigned = people_of(db)
    old_ids = np.arange(1, len(truth["identity"]) + 1)
    person = np.array([(before or assigned).get(int(f)) or -1 for f in old_ids])
    majority: dict[int, int] = {}
    has = person >= 0
    pairs, counts = np.unique(np.stack([truth["identity"][has], person[has]], 1), axis=0, return_counts=True)
    for (ident, p), c in sorted(zip(map(tuple, pairs), counts), key=lambda t: t[1]):
        majority[int(ident)] = int(p)  # the largest count is written last
    mostly: dict[int, int] = {}  # person -> the identity most of its faces have
    for (ident, p), c in sorted(zip(map(tuple, pairs), counts), key=lambda t: t[1]):
        mostly[int(p)] = int(ident)
    placed = np.array([assigned.get(int(f)) or -1 for f in new_ids])
    known = np.array([w < known_count and w in majority for w in who])
    right = np.array([mostly.get(int(p)) == w for p, w in zip(placed, who)])
    holder = np.array([p == majority.get(int(w), -2) for p, w in zip(placed, who)])
    existing = set(person[has].tolist())
    stranger = who >= known_count
    return {
        "known faces": int(known.sum()),
        "joined the right person": float(right[known].mean()) if known.any() else float("nan"),
        "joined the largest": float(holder[known].mean()) if known.any() else float("nan"),
        "joined a wrong person": float(((placed >= 0) & ~right)[known].mean()) if known.any() else float("nan"),
        "stayed out": float((placed[known] < 0).mean()) if known.any() else float("nan"),
        "stranger faces": int(stranger.sum()),
        "strangers joined someone": float(np.isin(placed[stranger], list(existing)).mean()) if stranger.any() else 0.0,
    }


def geometry(truth: dict, seed: int) -> tuple[float, float]:
    """Median distance within and between people on a sample of the synthetic faces."""
    rng = np.random.default_rng(seed + 2)
    population = Population(seed)
    sizes = np.bincount(truth["identity"])
    big = np.flatnonzero(sizes >= 2)[:200]
    a = population.faces(truth["centres"], truth["spreads"], np.repeat(big, 2), rng)
    within = np.linalg.norm(a[0::2] - a[1::2], axis=1)
    between = np.linalg.norm(a[0::2][:-1] - a[2::2], axis=1)
    return float(np.median(within)), float(np.median(between))


def main(argv=None) -> None:
    global BETWEEN_DECAY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--initial", choices=["truth", "cluster"], default="truth")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/fc-incremental"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chip-bytes", type=int, nargs=2, default=CHIP_BYTES, metavar=("MEAN", "SD"))
    parser.add_argument("--keep", action="store_true", help="keep the clustered store (a copy is made)")
    parser.add_argument("--compare-full", action="store_true",
                        help="then re-cluster everything (--full) and judge the new faces the same way")
    parser.add_argument("--between-decay", type=float, default=BETWEEN_DECAY,
                        help="identity centres' spectrum ~ 1 / (k + 1) ** this: higher is more crowded")
    args = parser.parse_args(argv)
    BETWEEN_DECAY = args.between_decay
    args.folder.mkdir(parents=True, exist_ok=True)
    db, truth = build(args.folder, args.size, args.seed, tuple(args.chip_bytes))
    work = args.folder / f"work-{args.size}-{args.seed}-{BETWEEN_DECAY:g}.db"
    for stale in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        stale.unlink(missing_ok=True)
    os.system(f"cp --reflink=auto {db} {work}")
    built = truth.get("seconds")
    within, between = geometry(truth, args.seed)
    initial = initial_clustering(work, truth, args.initial)
    initial_f = quality(work, truth)
    with Store(work) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        faces = store.counts()["faces"]
        started = time.perf_counter()
        store.embeddings()
        load = time.perf_counter() - started
        started = time.perf_counter()
        stable_faces(store)
        table = time.perf_counter() - started
    size_mb = os.path.getsize(work) / 1e6
    new_ids, who, insert = add_photos(work, truth, args.photos, args.seed, tuple(args.chip_bytes))
    before = people_of(work)
    started = time.perf_counter()
    report = api.cluster(work)
    add = time.perf_counter() - started
    verdict = judge(work, truth, new_ids, who, before)
    del before
    rows = [
        ("faces in the store", f"{faces:,}"),
        ("identities (Zipf sizes)", (f"{len(truth['spreads']):,}, median distance within {within:.2f}, "
                                    f"between {between:.2f}")),
        ("store file", f"{size_mb:,.0f} MB"),
        ("per million faces", f"{size_mb / faces * 1e6 / 1000:,.2f} GB"),
        ("build (bulk insert)", f"{built:,.0f} s" if built else "reused"),
        (f"initial clustering ({args.initial})", f"{initial:,.1f} s, BCubed F {initial_f:.3f}"),
        ("read every embedding (Store.embeddings)", f"{load:,.2f} s"),
        ("read every face sorted (stable_faces)", f"{table:,.2f} s"),
        (f"save {args.photos:,} new photos ({len(new_ids):,} faces)", f"{insert:,.1f} s"),
        ("incremental clustering (api.cluster)", f"{add:,.1f} s ({report.mode})"),
        ("new faces", (f"{report.new_faces:,}: {report.joined:,} joined, {report.in_new_people:,} in "
                      f"{report.new_people:,} new people, {report.new_unknown:,} unknown")),
        (f"known people's faces ({verdict['known faces']:,}) that joined the right person*",
         f"{verdict['joined the right person']:.1%}"),
        ("... that joined the person holding most of their identity's faces",
         f"{verdict['joined the largest']:.1%}"),
        ("... that joined a wrong person*", f"{verdict['joined a wrong person']:.1%}"),
        ("... that stayed out (unknown or a new person)", f"{verdict['stayed out']:.1%}"),
        (f"strangers' faces ({verdict['stranger faces']:,}) that joined an existing person",
         f"{verdict['strangers joined someone']:.1%}"),
    ]
    if args.compare_full:
        started = time.perf_counter()
        api.cluster(work, full=True)
        full = time.perf_counter() - started
        again = judge(work, truth, new_ids, who)
        rows += [
            ("full re-clustering instead (api.cluster --full)", f"{full:,.1f} s"),
            ("... known people's faces with the right person*", f"{again['joined the right person']:.1%}"),
            ("... with the person holding most of their identity's faces",
             f"{again['joined the largest']:.1%}"),
            ("... with a wrong person", f"{again['joined a wrong person']:.1%}"),
            ("... strangers' faces with an existing person", f"{again['strangers joined someone']:.1%}"),
        ]
    print(f"\n`nice -n 10 python benchmarks/incremental.py --size {args.size} --initial {args.initial}"
          f" --photos {args.photos} --between-decay {BETWEEN_DECAY:g}{' --compare-full' if args.compare_full else ''}` on {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n\\* the right person: one most of whose faces (before the new photos) are that identity;"
          " known people: identities with faces in some person.")
    if args.keep:
        np.savez(work.with_suffix(".new.npz"), ids=new_ids, who=who)
    else:
        for stale in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
            stale.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
