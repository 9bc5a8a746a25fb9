"""How quickly the review app answers on a large collection.

Builds a synthetic store (no photos: random embeddings and one small chip JPEG): 5,000 people,
one of them with 20,000 faces, the rest with 1 to 40, plus unknown faces in look-alike groups.
Starts the real server (uvicorn on 127.0.0.1) and times each request over HTTP, as the browser
makes it: the people page and a later page of cards, a search, the 20,000-face person's first
and later pages of chips, a chip, the unknown page, the queue, and corrections (each undone
again, so every run measures the same store).

    python benchmarks/web.py [--people 5000] [--big 20000] [--unknown 2000] [--db PATH]

Prints a Markdown table of server response times (median and slowest of N requests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facecluster.scan import encode_jpeg
from facecluster.store import Store
from facecluster.web import ReviewServer


def build_store(path: Path, people: int, big: int, unknown: int, seed: int = 0) -> dict:
    """A store of ``people`` people (person 1 has ``big`` faces) and ``unknown`` unknown faces."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[big, np.minimum(1 + rng.geometric(0.12, people - 1), 40)].astype(int)
    groups = max(1, unknown // 5)
    centres = rng.normal(size=(people + groups, 128)).astype(np.float32)
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    owner = np.r_[np.repeat(np.arange(people), sizes), people + rng.integers(0, groups, unknown)]
    X = centres[owner] + rng.normal(scale=0.03, size=(len(owner), 128)).astype(np.float32)
    chip = encode_jpeg(np.full((150, 150, 3), 150, np.uint8), quality=80)
    started = time.perf_counter()
    with Store(path) as store, store.transaction():
        db = store.db
        db.executemany("INSERT INTO people (id, name, created) VALUES (?, ?, 0)",
                       [(i + 1, f"Person {i + 1}" if i % 3 == 0 else None) for i in range(people)])
        db.executemany("INSERT INTO media (id, path, size, mtime, width, height, status) VALUES (?,?,1,1,800,600,'ok')",
                       [(k + 1, f"/synthetic/{k:07d}.jpg") for k in range(len(owner))])
        db.executemany(
            "INSERT INTO faces (id, media_id, left, top, right, bottom, score, detector, landmarks,"
            " sharpness, chip, model, embedding) VALUES (?,?,300,200,420,320,1,'hog','[]',?,?,'dlib_resnet_v1',?)",
            [(k + 1, k + 1, float(rng.random()), chip, X[k].tobytes()) for k in range(len(owner))])
        db.executemany("INSERT INTO assignments (face_id, person_id, confidence) VALUES (?,?,?)",
                       [(k + 1, int(owner[k]) + 1 if owner[k] < people else None, float(rng.random()))
                        for k in range(len(owner))])
    return {"faces": len(owner), "seconds": time.perf_counter() - started,
            "small": [int(i) + 1 for i in np.flatnonzero(sizes[1:] >= 5)[:3] + 1]}


def timed(client: httpx.Client, method: str, path: str, **kwargs) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
    return elapsed, response


def measure(client, label: str, method: str, path: str, repeat: int, rows: list, **kwargs) -> httpx.Response:
    times, response = [], None
    for _ in range(repeat):
        elapsed, response = timed(client, method, path, **kwargs)
        times.append(elapsed)
    rows.append((label, repeat, statistics.median(times), max(times), len(response.content)))
    return response


def correction(client, label: str, action: str, data: dict, rows: list, repeat: int = 3) -> None:
    """Time a correction and its undo, ``repeat`` times (the store ends as it began)."""
    made, undone = [], []
    for _ in range(repeat):
        elapsed, response = timed(client, "POST", f"/api/{action}", json=data)
        assert response.json()["ok"], response.text
        made.append(elapsed)
        elapsed, _ = timed(client, "POST", "/api/undo", json={})
        undone.append(elapsed)
    rows.append((label, repeat, statistics.median(made), max(made), None))
    rows.append(("  undo it", repeat, statistics.median(undone), max(undone), None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--big", type=int, default=20000)
    parser.add_argument("--unknown", type=int, default=2000)
    parser.add_argument("--db", type=Path, default=None, help="keep the synthetic store here")
    args = parser.parse_args()

    folder = tempfile.TemporaryDirectory()
    db = args.db or Path(folder.name) / "faces.db"
    if db.exists():
        db.unlink()
    built = build_store(db, args.people, args.big, args.unknown)
    print(f"store: {args.people:,} people, {built['faces']:,} faces (person 1: {args.big:,}), "
          f"{args.unknown:,} unknown; built in {built['seconds']:.1f} s", file=sys.stderr)

    rows: list = []
    with ReviewServer(db, Path(folder.name) / "export") as server:
        client = httpx.Client(base_url=server.url.rstrip("/"), timeout=300,
                              headers={"X-Token": server.settings.token})
        measure(client, "people page, first load (nothing cached yet)", "GET", "/", 1, rows)
        measure(client, f"people page (first 120 of {args.people:,} cards)", "GET", "/", 10, rows)
        measure(client, "people: a later page of cards (offset 2,400)", "GET", "/people/more?offset=2400", 10, rows)
        measure(client, "people: search by name", "GET", "/?q=Person 42", 10, rows)
        measure(client, "name autocomplete (8 people)", "GET", "/api/people?q=per", 10, rows)
        measure(client, f"person with {args.big:,} faces: first page (200 chips)", "GET", "/person/1", 10, rows)
        measure(client, "  a later page (offset 10,000)", "GET", "/person/1/faces?offset=10000", 10, rows)
        measure(client, "  the last page", "GET", f"/person/1/faces?offset={args.big - 200}", 10, rows)
        measure(client, "a small person's page", "GET", f"/person/{built['small'][0]}", 10, rows)
        measure(client, "a chip (150 px JPEG)", "GET", "/chip/12345", 100, rows)
        measure(client, "photo info for the viewer (boxes, names)", "GET", "/api/face/12345", 20, rows)
        measure(client, f"unknown page ({args.unknown:,} faces grouped), first", "GET", "/unknown", 1, rows)
        measure(client, "  again (groups cached)", "GET", "/unknown", 5, rows)
        measure(client, "rejected page", "GET", "/rejected", 5, rows)
        measure(client, "\"Same person?\" count, first", "GET", "/api/queue/count", 1, rows)
        measure(client, "  again (cached)", "GET", "/api/queue/count", 5, rows)
        measure(client, "\"Same person?\" page (one question)", "GET", "/queue", 3, rows)

        small_a, small_b = built["small"][:2]
        with Store(db) as store:
            face_a = store.db.execute("SELECT face_id FROM assignments WHERE person_id=? LIMIT 1",
                                      (small_a,)).fetchone()[0]
            face_big = store.db.execute("SELECT face_id FROM assignments WHERE person_id=1 LIMIT 1").fetchone()[0]
        correction(client, "correction: name a small person", "name", {"person": small_a, "name": "Bench"}, rows)
        changed = []
        for _ in range(3):
            timed(client, "POST", "/api/name", json={"person": small_a, "name": "Bench"})
            changed.append(timed(client, "GET", "/")[0])
            timed(client, "POST", "/api/undo", json={})
        rows.append(("people page right after a correction (recounted)", 3, statistics.median(changed),
                     max(changed), None))
        correction(client, "correction: move a face between small people", "move",
                   {"faces": [face_a], "to": str(small_b)}, rows)
        correction(client, "correction: reject a face of a small person", "reject", {"faces": [face_a]}, rows)
        correction(client, f"correction: split a face off the {args.big:,}-face person", "split",
                   {"faces": [face_big]}, rows, repeat=1)
        correction(client, f"correction: rename the {args.big:,}-face person", "name",
                   {"person": 1, "name": "Big"}, rows, repeat=1)

    print("| request | n | median ms | slowest ms | bytes |\n|---|---:|---:|---:|---:|")
    for label, n, median, slowest, size in rows:
        print(f"| {label} | {n} | {median:.1f} | {slowest:.1f} | {'' if size is None else f'{size:,}'} |")
    print(json.dumps({"people": args.people, "faces": built["faces"]}), file=sys.stderr)


if __name__ == "__main__":
    main()
