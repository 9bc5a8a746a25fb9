"""Scan speed and group-photo recall: facecluster against the seed approach, side by side, in one run.

    python benchmarks/speed.py                 # everything below, one table each (~8 min, quiet 2 cores)
    python benchmarks/speed.py --quick         # fewer photos, for development
    python benchmarks/speed.py --only 12mp     # one section: dev, 12mp, heic, levers, groups, video

Sections:

1. **Development sets** (jurassic_park, nogizaka46): the seed approach and facecluster on the same
   photos, photos per second and faces found.
2. **12 MP set**: development photos scaled to 12 MP (quality 92 JPEGs, made here into the cache
   folder, never into the repository), same comparison; facecluster's rate is the steady state,
   its start-up (worker processes, models) reported apart.
3. **HEIC copies** of the 12 MP set (x265, made here and cached): facecluster only.
4. **Levers**: CPU milliseconds per photo of the 12 MP set in one process, each change toggled.
5. **Group photos**: recall of hand-labelled faces (``benchmarks/group_faces.csv``, boxes drawn by
   looking at each photo) at default settings and with ``--detector mtcnn``, in the photos as they
   are and enlarged onto 12 MP canvases where their median face is 80 px (the issue's camera group
   photos); plus an exhaustive slow reference (dlib's CNN at twice the size, cached) as a
   cross-check of the labels.
6. **Video**: seconds of video per wall second at ``--fps 2``, 720p and 1080p.

The seed approach is face_recognition's recipe: full-resolution decode, dlib HOG with one
upsampling, 5-point landmarks, dlib's descriptor, one process.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent.parent / "shared" / "datasets"
DEV_SETS = ("jurassic_park", "nogizaka46")
LABELS = HERE / "group_faces.csv"
MATCH_IOU = 0.3  # a found box is a labelled face when they overlap this much (boxes differ in style)
CAMERA_MEDIAN_FACE = 80  # px: the camera group photos
CAMERA_SIZE = (4000, 3000)
SECTIONS = ("dev", "12mp", "heic", "levers", "groups", "video")
REPEAT = 3  # facecluster runs on the 12 MP photos, best kept (it takes seconds; the seed minutes)


def cache_folder(given: Path | None) -> Path:
    from facecluster.embed.dlib_resnet import cache_dir

    folder = given or cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- the two pipelines --------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the scan's worker processes):
    unlike wall time, it hardly depends on what else the machine is doing."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def seed_approach(photos: list[Path]) -> tuple[float, float, int]:
    """face_recognition-style: full-resolution HOG (upsample 1), landmarks, descriptor.
    Returns (wall seconds, CPU seconds, faces)."""
    import dlib
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    started, cpu, faces = time.perf_counter(), time.process_time(), 0
    for path in photos:
        try:
            image = np.array(Image.open(path).convert("RGB"))
        except OSError:
            continue
        for box in detector(image, 1):
            encoder.compute_face_descriptor(image, predictor(image, box), 1)
            faces += 1
    return time.perf_counter() - started, time.process_time() - cpu, faces


def _running_cpu() -> float:
    """CPU seconds so far of this process and its running children (the scan's workers)."""
    import multiprocessing

    ticks, total = os.sysconf("SC_CLK_TCK"), time.process_time()
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


@contextmanager
def _timed_progress(stamps: list[tuple[float, float]]):
    """Stands in for the scan's progress bar: when each photo is finished, and the CPU time
    spent by then."""
    @contextmanager
    def progress_bar(label, total, quiet=False):
        yield (lambda *args, **kwargs: stamps.append((time.perf_counter(), _running_cpu()))) \
            if label == "Finding faces" else (lambda *args, **kwargs: None)

    scan_module = importlib.import_module("facecluster.scan")
    saved = scan_module.progress_bar
    scan_module.progress_bar = progress_bar
    try:
        yield
    finally:
        scan_module.progress_bar = saved


def facecluster_scan(photos: list[Path], workers: int | None, options=None, repeat: int = 1) -> dict:
    """Scan the photos (linked into one folder) into a fresh store: seconds, faces, the start-up
    (until the first photo is done: worker processes, models) and the steady state, from the
    moment every worker has finished a photo to the last photo: photos per second, and CPU
    milliseconds per photo of all the scan's processes (load-independent). The best of
    ``repeat`` runs: the machine's other load only ever slows a run down."""
    from facecluster.scan import scan

    best = None
    cores = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, path in enumerate(photos):  # the same photos, by link, in one folder
            (folder / f"{i:05d}_{path.name}").symlink_to(path.resolve())
        for run in range(repeat):
            stamps: list[tuple[float, float]] = []
            started = time.perf_counter()
            with _timed_progress(stamps):
                report = scan(folder, Path(tmp) / f"faces{run}.db", options, workers=workers, quiet=True)
            seconds = time.perf_counter() - started
            first = min(cores, len(stamps) - 1) - 1  # every worker has finished a photo
            done = len(stamps) - 1 - first
            (t0, cpu0), (t1, cpu1) = stamps[first], stamps[-1]
            result = dict(seconds=seconds, faces=report.faces, startup=stamps[0][0] - started,
                          steady=done / max(1e-9, t1 - t0), cpu_ms=(cpu1 - cpu0) / done * 1000)
            if best is None or result["steady"] > best["steady"]:
                best = result
    return best


def comparison_row(name: str, photos: list[Path], workers: int | None, repeat: int = 1) -> str:
    seed_seconds, seed_cpu, seed_faces = seed_approach(photos)
    ours = facecluster_scan(photos, workers, repeat=repeat)
    seed_ms = seed_cpu / len(photos) * 1000
    return (f"| {name} | {len(photos)} | {len(photos) / seed_seconds:.2f} | {seed_ms:.0f} | {seed_faces} | "
            f"{ours['steady']:.2f} | {ours['cpu_ms']:.0f} | {ours['startup']:.1f} | {ours['faces']} | "
            f"{ours['steady'] * seed_seconds / len(photos):.1f}x | {seed_ms / ours['cpu_ms']:.1f}x |")


# -- the 12 MP set and its HEIC copies -----------------------------------------------------
def twelve_mp_set(cache: Path, count: int) -> list[Path]:
    """``count`` development photos spread over both sets, scaled to ~12 MP, quality 92."""
    from facecluster.media import find_photos

    photos = [p for name in DEV_SETS for p in find_photos(DATASETS / name)]
    step = len(photos) / count
    folder = cache / "12mp"
    folder.mkdir(exist_ok=True)
    made = []
    for i in range(count):
        source = photos[int(i * step)]
        target = folder / f"{i:03d}_{hashlib.sha1(str(source).encode()).hexdigest()[:8]}.jpg"
        if not target.exists():
            image = Image.open(source).convert("RGB")
            scale = (12e6 / (image.width * image.height)) ** 0.5
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.LANCZOS)
            image.save(target.with_suffix(".tmp.jpg"), quality=92)
            target.with_suffix(".tmp.jpg").replace(target)
        made.append(target)
    return made


def heic_copies(photos: list[Path], cache: Path) -> list[Path]:
    """HEIC copies (x265 'ultrafast', quality 85: encoding at the default preset takes ~16 s a
    photo; decoding costs the same either way)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    folder = cache / "heic"
    folder.mkdir(exist_ok=True)
    made = []
    for path in photos:
        target = folder / (path.stem + ".heic")
        if not target.exists():
            partial = folder / (path.stem + ".tmp.heic")
            Image.open(path).save(partial, quality=85, enc_params={"preset": "ultrafast"})
            partial.replace(target)
        made.append(target)
    return made


# -- levers -----------------------------------------------------------------------------------
def lever_rows(photos: list[Path]) -> list[str]:
    """CPU ms per photo in one process with each change toggled (CPU time: the machine's
    other load does not count)."""
    import importlib

    from facecluster import media
    from facecluster.detect import get_detector
    from facecluster.embed import get_embedder

    scan_module = importlib.import_module("facecluster.scan")  # facecluster.scan is also a function
    detector, embedder = get_detector("hog"), get_embedder()
    options = scan_module.ScanOptions()
    variants = [
        ("before: Pillow decode at 1/2, shrunk; chips from a second, full 12 MP decode",
         dict(fast=False, chip=float("inf"), finer=False)),
        ("+ OpenCV's libjpeg-turbo straight into an array (both decodes), bilinear last shrink",
         dict(fast=True, chip=float("inf"), finer=False)),
        ("+ chips from the 1/2 decode when the face is >= 150 px in it (no second decode)",
         dict(fast=True, chip=scan_module.CHIP_SOURCE_WIDTH, finer=False)),
        ("+ MTCNN finer pass where a face near HOG's reach was found (default)",
         dict(fast=True, chip=scan_module.CHIP_SOURCE_WIDTH, finer=True)),
    ]
    saved = media._fast_jpeg, scan_module.CHIP_SOURCE_WIDTH, scan_module.FINER_PASS_AFTER
    rows = []
    scan_module.find_faces(photos[0], detector, embedder, options)  # load models
    scan_module._small_detector()
    try:
        for label, v in variants:
            media._fast_jpeg = saved[0] if v["fast"] else (lambda *args: None)
            scan_module.CHIP_SOURCE_WIDTH = v["chip"]
            scan_module.FINER_PASS_AFTER = saved[2] if v["finer"] else frozenset()
            started, faces = time.process_time(), 0
            for path in photos:
                faces += len(scan_module.find_faces(path, detector, embedder, options)[0])
            ms = (time.process_time() - started) / len(photos) * 1000
            rows.append(f"| {label} | {ms:.0f} | {faces} |")
    finally:
        media._fast_jpeg, scan_module.CHIP_SOURCE_WIDTH, scan_module.FINER_PASS_AFTER = saved
    return rows


def heic_decode_rows(paths: list[Path]) -> list[str]:
    """HEIC has no reduced decode: CPU ms per photo to get the detector's 1 MP pixels and the
    full-size pixels for the chips, decoding twice (before) or once (now)."""
    from facecluster.media import load_photo

    rows = []
    for label, twice in (("before: decoded for detection, then again for the chips", True),
                         ("now: decoded once, full-size pixels kept for the chips", False)):
        started = time.process_time()
        for path in paths:
            photo = load_photo(path, max_pixels=1e6)
            load_photo(path) if twice else photo.at_least(1.0)
        rows.append(f"| HEIC decode only, {label} | | | "
                    f"{(time.process_time() - started) / len(paths) * 1000:.0f} | | |")
    return rows


# -- group photos ---------------------------------------------------------------------------
def read_labels(path: Path = LABELS) -> dict[str, list[tuple[int, int, int, int]]]:
    """photo (relative to the datasets folder) -> labelled boxes; a photo with none is listed
    with empty cells."""
    labels: dict[str, list] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            labels[row["photo"]]  # noqa: B018 - a photo without faces still counts
            if row["left"]:
                labels[row["photo"]].append(tuple(int(row[k]) for k in ("left", "top", "right", "bottom")))
    return dict(labels)


def iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def match(truth, found) -> tuple[int, int]:
    """(labelled faces found, found boxes matching no label): greedy one-to-one by IoU."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)),
                   reverse=True)
    hit_truth, hit_found = set(), set()
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU:
            break
        if i not in hit_truth and j not in hit_found:
            hit_truth.add(i)
            hit_found.add(j)
    return len(hit_truth), len(found) - len(hit_found)


def found_boxes(paths: list[Path], detector_name: str | None) -> tuple[list[list], float]:
    """Boxes facecluster stores for each photo (default settings, or another detector), and the
    CPU seconds per photo."""
    from facecluster.detect import get_detector
    from facecluster.embed import get_embedder
    from facecluster.scan import ScanOptions, find_faces

    options = ScanOptions(detector=detector_name)
    detector, embedder = get_detector(detector_name or "hog"), get_embedder()
    find_faces(paths[0], detector, embedder, options)  # load models
    started = time.process_time()
    boxes = [[face.box for face in find_faces(path, detector, embedder, options)[0]] for path in paths]
    return boxes, (time.process_time() - started) / len(paths)


def camera_groups(labels: dict, cache: Path) -> tuple[list[Path], list[list]]:
    """Each labelled group photo resized so its median face is CAMERA_MEDIAN_FACE px, in the
    middle of a grey 12 MP canvas (the detectors' cost does not depend on what the pixels show,
    except for the faces found)."""
    folder = cache / "camera_groups"
    folder.mkdir(exist_ok=True)
    paths, truths = [], []
    width, height = CAMERA_SIZE
    for name, boxes in sorted(labels.items()):
        if not boxes:
            continue
        scale = CAMERA_MEDIAN_FACE / statistics.median(b[2] - b[0] for b in boxes)
        target = folder / f"{hashlib.sha1(name.encode()).hexdigest()[:10]}.jpg"
        image = Image.open(DATASETS / name).convert("RGB")
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        left, top = max(0, (width - size[0]) // 2), max(0, (height - size[1]) // 2)
        crop_x, crop_y = max(0, (size[0] - width) // 2), max(0, (size[1] - height) // 2)
        if not target.exists():
            pixels = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
            pixels = pixels[crop_y:crop_y + height, crop_x:crop_x + width]
            canvas = np.full((height, width, 3), 128, np.uint8)
            canvas[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
            Image.fromarray(canvas).save(folder / "partial.jpg", quality=92)
            (folder / "partial.jpg").replace(target)
        shift = (left - crop_x, top - crop_y)
        moved = [tuple(round(v * scale) + shift[i % 2] for i, v in enumerate(b)) for b in boxes]
        inside = [b for b in moved if b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height]
        paths.append(target)
        truths.append(inside)
    return paths, truths


def reference_boxes(names: list[str], cache: Path) -> list[list]:
    """The slow exhaustive reference: dlib's MMOD CNN (in ONNX Runtime) at twice the photo's
    size (at full size past 4 MP), cached by photo."""
    from facecluster.detect import detect_faces, get_detector
    from facecluster.media import load_photo

    store = cache / "reference_cnn.json"
    known = json.loads(store.read_text()) if store.exists() else {}
    detector = None
    for name in names:
        if name not in known:
            detector = detector or get_detector("cnn")
            photo = load_photo(DATASETS / name)
            width, height = photo.size
            upscale = 2.0 if width * height <= 4e6 else 1.0
            known[name] = [list(d.box) for d in detect_faces(detector, photo.pixels, photo.scale, upscale)]
            store.write_text(json.dumps(known))
    return [[tuple(b) for b in known[name]] for name in names]


def group_rows(cache: Path) -> list[str]:
    labels = read_labels()
    names = sorted(labels)
    paths = [DATASETS / name for name in names]
    truths = [labels[name] for name in names]
    total = sum(len(t) for t in truths)
    rows = []
    for title, detector in (("default (HOG + finer pass)", None), ("--detector mtcnn", "mtcnn")):
        boxes, cpu = found_boxes(paths, detector)
        hits, extra = map(sum, zip(*(match(t, b) for t, b in zip(truths, boxes))))
        rows.append(f"| development group photos as they are | {len(paths)} | {title} | "
                    f"{hits}/{total} = {hits / total:.0%} | {extra} | {cpu * 1000:.0f} |")
    camera_paths, camera_truths = camera_groups(labels, cache)
    camera_total = sum(len(t) for t in camera_truths)
    for title, detector in (("default (HOG + finer pass)", None), ("--detector mtcnn", "mtcnn")):
        boxes, cpu = found_boxes(camera_paths, detector)
        hits, extra = map(sum, zip(*(match(t, b) for t, b in zip(camera_truths, boxes))))
        rows.append(f"| the same on 12 MP canvases, median face {CAMERA_MEDIAN_FACE} px | "
                    f"{len(camera_paths)} | {title} | {hits}/{camera_total} = {hits / camera_total:.0%} "
                    f"| {extra} | {cpu * 1000:.0f} |")
    reference = reference_boxes(names, cache)
    agreed = sum(match(t, r)[0] for t, r in zip(truths, reference))
    unlabelled = sum(match(t, r)[1] for t, r in zip(truths, reference))
    rows.append(f"| cross-check: dlib CNN at 2x size (slow reference) | {len(paths)} | reference | "
                f"{agreed}/{total} = {agreed / total:.0%} | {unlabelled} | - |")
    return rows


# -- video ---------------------------------------------------------------------------------
def video_clips(cache: Path) -> list[Path]:
    """A 720p clip (the 640 x 360 oval office clip enlarged, H.264, made once) and the 1080p
    crowd clip of the development sets."""
    import av

    clips = []
    source = DATASETS / "videos" / "oval_office_clip.mp4"
    target = cache / "oval_office_720p.mp4"
    if source.is_file() and not target.exists():
        partial = cache / "partial_720p.mp4"
        with av.open(str(source)) as inp, av.open(str(partial), "w") as out:
            stream_in = inp.streams.video[0]
            rate = stream_in.average_rate or Fraction(25)
            stream = out.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            stream.options = {"crf": "20", "preset": "veryfast"}
            for index, frame in enumerate(inp.decode(stream_in)):
                big = frame.reformat(width=1280, height=720, format="yuv420p")
                big.pts, big.time_base = index, 1 / Fraction(rate)
                out.mux(stream.encode(big))
            out.mux(stream.encode(None))
        partial.replace(target)
    if target.exists():
        clips.append(target)
    crowd = DATASETS / "videos" / "facenet_pytorch_crowd_walk.mp4"
    if crowd.is_file():
        clips.append(crowd)
    return clips


def video_rows(cache: Path, workers: int | None) -> list[str]:
    import av

    from facecluster.scan import ScanOptions
    from facecluster.video import VideoOptions, scan_media

    rows = []
    for clip in video_clips(cache):
        with av.open(str(clip)) as container:
            context = container.streams.video[0].codec_context
            size = f"{context.width}x{context.height}"
        with tempfile.TemporaryDirectory() as folder:
            started, cpu = time.perf_counter(), cpu_seconds()
            report = scan_media(clip, Path(folder) / "faces.db", ScanOptions(), VideoOptions(fps=2.0),
                                workers=workers, quiet=True)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        cores = workers or os.cpu_count() or 1
        rows.append(f"| {clip.name} | {size} | {report.video_seconds:.1f} | {wall:.1f} | {cpu:.1f} | "
                    f"{report.faces} | {report.video_seconds / wall:.2f}x | "
                    f"{report.video_seconds * cores / cpu:.2f}x |")
    return rows


# -- main -------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, action="append", help="Run only these sections.")
    parser.add_argument("--quick", action="store_true", help="Fewer photos (development runs).")
    parser.add_argument("--limit", type=int, default=None, help="Photos per development set.")
    parser.add_argument("--twelve", type=int, default=24, help="Photos in the 12 MP set.")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="Where made photos and clips are kept.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sections = args.only or SECTIONS
    limit, twelve = (40, 10) if args.quick else (args.limit, args.twelve)
    cache = cache_folder(args.cache)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores; facecluster workers: {args.workers or os.cpu_count()}; "
          f"load average at start {load:.2f}; {time.strftime('%Y-%m-%d')}\n", flush=True)
    from facecluster.media import find_photos

    if "dev" in sections or "12mp" in sections:
        print("| photos | n | seed photos/s | seed CPU ms/photo | seed faces | facecluster photos/s "
              "(steady) | facecluster CPU ms/photo (all processes) | start-up s | facecluster faces | "
              "speed-up (wall) | CPU per photo, seed / facecluster |")
        print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    if "dev" in sections:
        for name in DEV_SETS:
            if (DATASETS / name).is_dir():
                print(comparison_row(name, find_photos(DATASETS / name)[:limit], args.workers), flush=True)
    photos12 = twelve_mp_set(cache, twelve) if {"12mp", "heic", "levers"} & set(sections) else []
    if "12mp" in sections:
        print(comparison_row("12 MP JPEG (dev photos enlarged, q92)", photos12, args.workers, REPEAT),
              flush=True)
        from facecluster.scan import ScanOptions

        small = facecluster_scan(photos12, args.workers, ScanOptions(detector="mtcnn"), REPEAT)
        print(f"| the same, facecluster --detector mtcnn (faces from ~40 px) | {len(photos12)} | | | | "
              f"{small['steady']:.2f} | {small['cpu_ms']:.0f} | {small['startup']:.1f} | {small['faces']} "
              "| | |", flush=True)
    if "heic" in sections:
        heic = heic_copies(photos12, cache)
        jpeg = facecluster_scan(photos12, args.workers, repeat=REPEAT)
        ours = facecluster_scan(heic, args.workers, repeat=REPEAT)
        print("\n| 12 MP photos | n | facecluster photos/s (steady) | CPU ms/photo (all processes) | "
              "start-up s | faces |")
        print("|---|---|---|---|---|---|")
        for label, paths, r in (("JPEG", photos12, jpeg), ("HEIC copies", heic, ours)):
            print(f"| {label} | {len(paths)} | {r['steady']:.2f} | {r['cpu_ms']:.0f} | {r['startup']:.1f} | "
                  f"{r['faces']} |", flush=True)
        print("\n".join(heic_decode_rows(heic)), flush=True)
    if "levers" in sections:
        print(f"\n| lever (12 MP set, {len(photos12)} photos, one process) | CPU ms/photo | faces |")
        print("|---|---|---|")
        print("\n".join(lever_rows(photos12)), flush=True)
    if "groups" in sections:
        print("\n| group photos | photos | detector | labelled faces found | found, not labelled | "
              "CPU ms/photo |")
        print("|---|---|---|---|---|---|")
        print("\n".join(group_rows(cache)), flush=True)
    if "video" in sections:
        print("\n| clip (--fps 2, default detector) | size | video s | wall s | CPU s (all processes) | "
              "faces | speed (wall) | speed if the cores were idle (video s x cores / CPU s) |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(video_rows(cache, args.workers)), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at end {load:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
