"""Print what look-alike searches (`find`, `similar`) do on the development sets.

    nice -n 10 python benchmarks/lookalike.py [--datasets ../shared/datasets] [--work DIR]

Each set is scanned with the defaults and clustered (`graph`) as its own store. *Members*: each
face that is the largest in its labelled photo searches the rest of its store (its own photo
left out); *found* = the person matched is its identity (the majority identity of the person's
labelled faces), *wrong* = another identity. *Strangers*: every such face of the other four sets
searches the store; *matched* = a person, or an unknown face, is matched (what would make
`find` add someone's photos).

Two rules side by side, on the same stores:

* **search** (now): a person matches when two of their photos are within the search threshold
  (their one photo, for a person with one), an unknown face when it alone is within the
  single-face threshold; both thresholds are calibrated by searching each face of a person
  among everyone else's faces (`similar.calibrate_search`), and neither is above the pair
  threshold below.
* **pair** (before): the nearest face within the threshold that accepts 1 in 1,000 pairs of
  different people (`similar.calibrate`) names the match.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from facecluster import api
from facecluster.explore import similar as sim

ROOT = Path(__file__).resolve().parent.parent
SETS = ["five_celebrity", "jurassic_park", "ageitgey_examples", "yale_faces", "nogizaka46"]
MODEL = "dlib_resnet_v1"


def load(root: Path, work: Path) -> tuple[sim.Collection, np.ndarray]:
    """The set as a clustered store, and the identity of each face that is the largest in its
    labelled photo (None for the others)."""
    db = work / f"{root.name}.db"
    api.scan(root, db, quiet=True)
    api.cluster(db)
    c = sim.load_store(db, MODEL)
    largest: dict[str, int] = {}
    for i, (photo, box) in enumerate(zip(c.photos, c.boxes)):
        if photo not in largest or sim._area(box) > sim._area(c.boxes[largest[photo]]):
            largest[photo] = i
    truth = np.full(len(c.photos), None, object)
    for photo, i in largest.items():
        truth[i] = sim.identity_of(Path(photo), root.resolve()) if Path(photo).is_relative_to(root.resolve()) else None
    return c, truth


def majority(c: sim.Collection, truth: np.ndarray) -> dict[int, str | None]:
    """Each person's majority identity among its labelled faces."""
    votes: dict[int, Counter] = {}
    for person, identity in zip(c.people, truth):
        if person >= 0 and identity is not None:
            votes.setdefault(int(person), Counter())[identity] += 1
    return {p: v.most_common(1)[0][0] for p, v in votes.items()}


def search_rule(c: sim.Collection, query: np.ndarray, keep: np.ndarray, person_t: float, face_t: float):
    """(matched person id or None, an unknown face matched) under the search rule."""
    sub = _subset(c, keep)
    ranked = sim.rank_identities(query, sub, person_t)
    person = next((r["person_id"] for r in ranked if r["same_person"] and r["person_id"] is not None), None)
    l2 = np.linalg.norm(sub.X - query, axis=1)
    return person, bool(((sub.people < 0) & (l2 <= face_t)).any())


def pair_rule(c: sim.Collection, query: np.ndarray, keep: np.ndarray, pair_t: float):
    l2 = np.linalg.norm(c.X[keep] - query, axis=1)
    i = int(np.argmin(l2))
    if l2[i] > pair_t:
        return None, False
    person = int(c.people[keep][i])
    return (person, False) if person >= 0 else (None, True)


def _subset(c: sim.Collection, keep: np.ndarray) -> sim.Collection:
    index = np.flatnonzero(keep)
    return sim.Collection(c.face_ids[index], c.X[index], [c.photos[i] for i in index],
                          [c.boxes[i] for i in index], [c.labels[i] for i in index], c.people[index],
                          c.kind, c.db, None if c.shots is None else c.shots[index])


def measure(stores: dict) -> list[dict]:
    rows = []
    for name, (c, truth) in stores.items():
        pair_t = sim.calibrate(c.X, c.labels, MODEL, shots=c.shots)
        person_t = sim.calibrate_search(c.X, c.labels, MODEL, pairs=pair_t)
        face_t = sim.calibrate_search(c.X, c.labels, MODEL, photos=1, pairs=pair_t)
        identity = majority(c, truth)
        photos = np.array(c.photos, dtype=object)
        tally = Counter()
        for i in np.flatnonzero(truth != None):  # noqa: E711
            keep = photos != photos[i]
            for rule, (person, unknown) in (
                    ("search", search_rule(c, c.X[i], keep, person_t.value, face_t.value)),
                    ("pair", pair_rule(c, c.X[i], keep, pair_t.value))):
                tally[rule, "members"] += 1
                if person is not None:
                    tally[rule, "found" if identity.get(person) == truth[i] else "wrong"] += 1
        everyone = np.ones(len(c.photos), bool)
        for other, (o, o_truth) in stores.items():
            if other == name:
                continue
            for i in np.flatnonzero(o_truth != None):  # noqa: E711
                for rule, (person, unknown) in (
                        ("search", search_rule(c, o.X[i], everyone, person_t.value, face_t.value)),
                        ("pair", pair_rule(c, o.X[i], everyone, pair_t.value))):
                    tally[rule, "strangers"] += 1
                    tally[rule, "matched"] += person is not None or unknown
        rows.append({"set": name, "faces": len(c.photos), "person_t": person_t, "face_t": face_t,
                     "pair_t": pair_t, "tally": tally})
        print(f"{name}: done", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| store | faces | search: person threshold (rate per search) | members found / wrong "
             "| strangers matched | pair: threshold (rate per pair) | members found / wrong | strangers matched |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["tally"]
        cells = []
        for rule, threshold in (("search", r["person_t"]), ("pair", r["pair_t"])):
            rate = sim.share(threshold.false_accept) if threshold.false_accept is not None else "unknown"
            cells += [f"{threshold.value:.3f} ({rate})",
                      f"{t[rule, 'found'] / t[rule, 'members']:.1%} / {t[rule, 'wrong'] / t[rule, 'members']:.1%}",
                      f"{t[rule, 'matched'] / t[rule, 'strangers']:.1%}"]
        lines.append(f"| {r['set']} | {r['faces']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--work", type=Path, default=None, help="Folder for the stores [default: a temporary one].")
    args = parser.parse_args()
    missing = [s for s in SETS if not (args.datasets / s).is_dir()]
    if missing:
        print(f"missing development sets: {', '.join(missing)}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        stores = {name: load(args.datasets / name, work) for name in SETS}
        rows = measure(stores)
    print(f"`python benchmarks/lookalike.py`, {datetime.date.today()} ({platform.machine()}, "
          f"Python {platform.python_version()})\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
