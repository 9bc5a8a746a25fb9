"""Photos per second: facecluster's scan against the seed approach, on the same photos, in one run.

    python benchmarks/speed.py [FOLDER ...] [--limit N]

The seed approach is face_recognition's recipe: decode at full resolution, dlib HOG with one
upsampling, 5-point landmarks, dlib's descriptor, one process. facecluster: bounded working
resolution, JPEG draft decoding, dlib's ResNet in ONNX Runtime, all cores. Both find and embed
every face. Default folders: ../shared/datasets/jurassic_park and nogizaka46.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

from facecluster.media import find_photos
from facecluster.scan import scan

HERE = Path(__file__).resolve().parent
DEFAULT_SETS = [HERE.parent.parent / "shared" / "datasets" / name for name in ("jurassic_park", "nogizaka46")]


def seed_approach(photos: list[Path]) -> tuple[float, int]:
    """face_recognition-style: full-resolution HOG (upsample 1), landmarks, descriptor."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    started, faces = time.perf_counter(), 0
    for path in photos:
        try:
            image = np.array(Image.open(path).convert("RGB"))
        except OSError:
            continue
        for box in detector(image, 1):
            encoder.compute_face_descriptor(image, predictor(image, box), 1)
            faces += 1
    return time.perf_counter() - started, faces


def facecluster_scan(folder: Path, photos: list[Path], workers: int | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "photos"
        subset.mkdir()
        for i, path in enumerate(photos):  # the same photos, by link, in one folder
            (subset / f"{i:05d}_{path.name}").symlink_to(path.resolve())
        started = time.perf_counter()
        report = scan(subset, Path(tmp) / "faces.db", workers=workers, quiet=True)
        return time.perf_counter() - started, report.faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=DEFAULT_SETS)
    parser.add_argument("--limit", type=int, default=None, help="Photos per folder (default all).")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; facecluster workers: {args.workers or os.cpu_count()}\n")
    print("| photos | n | seed photos/s | seed faces | facecluster photos/s | facecluster faces | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.folders:
        if not folder.is_dir():
            print(f"skipping {folder}: not found", file=sys.stderr)
            continue
        photos = find_photos(folder)[: args.limit]
        seed_seconds, seed_faces = seed_approach(photos)
        our_seconds, our_faces = facecluster_scan(folder, photos, args.workers)
        print(f"| {folder.name} | {len(photos)} | {len(photos) / seed_seconds:.2f} | {seed_faces} | "
              f"{len(photos) / our_seconds:.2f} | {our_faces} | {seed_seconds / our_seconds:.1f}x |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
