"""How fast are videos analysed? Seconds of video per second of wall time, at ``--fps 2``.

Runs the whole video scan (decode, sample, detect, align, embed, track, store) on the clips
in ``../shared/datasets/videos/`` (missing clips are skipped) and prints a table; a speed
above 1.0x is faster than real time. ``decode`` is the time to decode and sample the clip
alone, which bounds what any detector could reach.

    python3 benchmarks/video_speed.py                       # HOG, 1 and 2 workers
    python3 benchmarks/video_speed.py --detector cnn --workers 2
    python3 benchmarks/video_speed.py --clothing             # does --with-clothing help?

``--clothing`` measures instead whether clothing helps to re-identify people: each clip is
scanned once, then its faces are clustered *without* the track links (frames still
cannot-link), on the face alone and fused with clothing at several weights, and scored
(BCubed F) against the tracks as identities. Only clips whose tracks are each a different
person make a fair truth (see docs/video.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from facecluster.scan import ScanOptions
from facecluster.video import VideoOptions, parse_source, scan_media
from facecluster.video.sources import frames_with_retries, sample_frames

CLIPS = ["short_hamilton_clip.mp4", "oval_office_clip.mp4", "facenet_pytorch_crowd_walk.mp4"]
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "videos"


def decode_seconds(path: Path, fps: float) -> float:
    """Wall time to decode the clip and convert its sampled frames to RGB."""
    started = time.perf_counter()
    for frame in sample_frames(frames_with_retries(parse_source(path)), fps):
        frame.rgb()
    return time.perf_counter() - started


def scan_seconds(path: Path, fps: float, workers: int, detector: str) -> tuple[float, float, int]:
    """(wall seconds, seconds of video, faces) of a full scan into a fresh store."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        report = scan_media(path, Path(folder) / "faces.db", ScanOptions(detector=detector),
                            VideoOptions(fps=fps), workers=workers, quiet=True)
        return time.perf_counter() - started, report.video_seconds, report.faces


def clothing_rows(path: Path, detector: str, weights=(0.0, 0.15, 0.3, 0.5)) -> list[str]:
    """BCubed F and cluster count of track-free clustering per clothing weight."""
    from facecluster.cluster.collection import VIDEO_SAME_PERSON_BOUND, stable_faces
    from facecluster.cluster import get_clusterer
    from facecluster.evaluate.metrics import bcubed_prf
    from facecluster.store import Store
    from facecluster.video.clustering import fused_features

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "faces.db"
        scan_media(path, db, ScanOptions(detector=detector), VideoOptions(), quiet=True)
        with Store(db) as store:
            ids, X, frames, truth = stable_faces(store)
            if len(X) == 0:
                return [f"{path.name:34} {0:5d}  no faces found"]
            for weight in weights:
                features = fused_features(store, ids, X, VideoOptions(with_clothing=weight > 0,
                                                                      clothing_weight=weight))
                labels = get_clusterer("graph", same_person_bound=VIDEO_SAME_PERSON_BOUND).fit_predict(
                    features, cannot_link=frames)
                f_score = bcubed_prf(truth, labels)[2]
                rows.append(f"{path.name:34} {len(X):5d} {len(set(truth)):6d} {weight:8.2f} "
                            f"{len(set(labels[labels >= 0])):8d} {int((labels < 0).sum()):7d} {f_score:9.3f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--detector", default="cnn", choices=["hog", "cnn", "cnn-dlib"])
    parser.add_argument("--clothing", action="store_true", help="measure --with-clothing instead")
    args = parser.parse_args()
    clips = [args.folder / name for name in CLIPS if (args.folder / name).is_file()]
    if not clips:
        print(f"no clips in {args.folder}; nothing to measure")
        return
    if args.clothing:
        print(f"detector {args.detector}; faces clustered without track links, tracks as truth")
        print(f"{'clip':34} {'faces':>5} {'tracks':>6} {'clothing':>8} {'clusters':>8} {'unknown':>7} "
              f"{'BCubed F':>9}")
        for clip in clips:
            print("\n".join(clothing_rows(clip, args.detector)))
        return
    print(f"detector {args.detector}, --fps {args.fps:g}; speed = seconds of video / wall second")
    print(f"{'clip':34} {'size':>9} {'video s':>7} {'decode s':>8} {'workers':>7} {'wall s':>7} "
          f"{'faces':>5} {'speed':>7}")
    for clip in clips:
        import av

        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            size = f"{stream.codec_context.width}x{stream.codec_context.height}"
        decode = decode_seconds(clip, args.fps)
        for workers in args.workers:
            wall, seconds, faces = scan_seconds(clip, args.fps, workers, args.detector)
            print(f"{clip.name:34} {size:>9} {seconds:7.1f} {decode:8.2f} {workers:7d} {wall:7.2f} "
                  f"{faces:5d} {seconds / wall:6.2f}x")


if __name__ == "__main__":
    main()
