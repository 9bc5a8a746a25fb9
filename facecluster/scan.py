"""Scan a photo collection into the store: find -> decode -> detect -> align -> embed -> save.

Photos are processed by a pool of worker processes (one per core by default), or by the
workers of a Dask cluster (``dask=``, see docs/dask.md); the main process alone writes to the
store, one transaction per file, so a killed run keeps every finished file and a re-run reads
only new or changed files.

What a scan reports (:class:`ScanReport`): every file it could not use, on every run (a file
that failed before and has not changed is listed again with its stored reason), including
FIFOs, sockets and devices, which are never opened; and the photos so large that the detector,
at its bounded working resolution, cannot see their smaller faces. A full disk or a damaged
store stops the scan with a :class:`facecluster.store.StoreError`; every file finished before
is kept.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from facecluster.detect import (detect_faces, detect_smaller_faces, finer_pass_reach, get_detector,
                                working_scale)
from facecluster.embed import align_face, get_embedder
from facecluster.media import MediaError, Photo, file_hash, find_photos, load_photo, media_path
from facecluster.progress import progress_bar
from facecluster.store import FaceRecord, Store


PHOTO_DETECTOR = "hog"  # fast, and photos are mostly frontal
VIDEO_DETECTOR = "cnn"  # frames catch turned faces; few frames are sampled

# Narrowest face both dlib detectors find, in pixels at their working resolution: measured by
# shrinking the sample photos step by step, HOG and CNN both stop finding faces below ~60 px.
SMALLEST_DETECTABLE_FACE = 60

# The finer pass runs in photos where nobody asked for it, so it keeps only faces MTCNN is
# surest of: on the labelled group photos 193 of 197 faces score above 0.95, and every false
# face seen (a dark box on the desk of the sample's obama.jpg, two in the group photos)
# scored 0.81-0.93.
FINER_PASS_MIN_SCORE = 0.95

# Narrowest face at the working resolution for detectors other than dlib's: MTCNN's window.
DETECTOR_SMALLEST_FACE = {"mtcnn": 12}

# Detectors after which the finer pass (MTCNN, for faces below their ~60 px reach) may run.
FINER_PASS_AFTER = frozenset({"hog", "cnn", "cnn-dlib"})

# A face is aligned in the coarsest decode of its photo where its box is at least this wide (or
# at full size): its 150 px chip then has all the detail there is, and no 12 MP photo is decoded
# in full to cut out a chip. Measured on real faces (tests/test_speed_paths.py, docs/speed.md):
# the embedding moves by an L2 distance of ~0.05 from the full-size chip's, as much as
# re-detecting the same face moves it, against 0.6 between different people.
CHIP_SOURCE_WIDTH = 150


@dataclass
class ScanOptions:
    """How faces are found and embedded. Changing any of these re-scans every photo."""

    detector: str | None = None  # None: "hog" for photos, "cnn" for video frames
    megapixels: float | None = None  # detector working resolution; None: the detector's default
    min_face: int = 0  # drop faces narrower than this (full-resolution pixels)
    embedder: str = "dlib"
    jitter: int = 0

    def fingerprint(self) -> str:
        return repr(sorted(asdict(self).items()))


@dataclass
class ScanReport:
    """What a scan did."""

    photos: int = 0  # photos found under the root
    scanned: int = 0  # read this time
    unchanged: int = 0  # skipped: already in the store
    moved: int = 0  # recognised by content after a move or rename
    missing: int = 0  # in the store but gone from disk
    faces: int = 0  # faces found in the photos read this time
    without_face: int = 0  # photos read this time (and readable) in which no face was found
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, why), sorted by path
    seconds: float = 0.0
    root: str = ""  # what was scanned
    # Faces narrower than SMALLEST_DETECTABLE_FACE at the detector's working resolution cannot be
    # found: of the photos read this time, ``downscaled`` were searched below their full size
    # (and below --min-face); in the largest of them, ``largest_size`` (width, height), faces
    # narrower than ``smallest_face`` of its pixels may have been missed.
    downscaled: int = 0
    smallest_face: int = 0
    largest_size: tuple[int, int] | None = None
    detect_megapixels: float = 0.0

    def notes(self) -> list[str]:
        """Sentences a person should read besides the counts: nothing found, faces too small."""
        notes = [] if self.photos else [f"no photos found in {self.root}"]
        if self.downscaled:
            width, height = self.largest_size
            notes.append(f"{self.downscaled} {'photo was' if self.downscaled == 1 else 'photos were'} "
                         f"searched for faces at {self.detect_megapixels:g} MP, below full size "
                         f"(the largest {width} x {height}): faces narrower than ~{self.smallest_face} px "
                         "in them may be missed; --detect-mp looks closer")
        return notes


def scan(root: str | os.PathLike, db: str | os.PathLike, options: ScanOptions | None = None,
         workers: int | None = None, exclude: list[Path] | None = None,
         quiet: bool = False, dask=None) -> ScanReport:
    """Find and embed every face in the photos below ``root``, storing them in ``db``.

    ``dask`` sends detection and embedding to the workers of a Dask cluster instead of local
    processes (``workers`` is then ignored): a scheduler address (``"tcp://host:8786"``) or a
    ``distributed.Client``. The workers must see the photos at the paths this machine sees and
    run the same facecluster version (docs/dask.md); this process alone writes the store, as it
    does for a local scan. Problems with the cluster raise :class:`DaskError` before anything is
    written (no scheduler, no workers, another version) or stop the scan keeping every photo
    finished so far (the scheduler lost, a worker that cannot see the photos).

    Examples
    --------
    >>> report = scan("~/Pictures", "faces.db")  # doctest: +SKIP
    >>> report.faces, len(report.errors)
    (1423, 2)
    >>> scan("/mnt/photos", "faces.db", dask="tcp://10.0.0.5:8786")  # doctest: +SKIP
    """
    started = time.perf_counter()
    options = options or ScanOptions()
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    with dask_client(dask) as client:
        return _scan(root, db, options, workers, exclude, quiet, client, started)


def _scan(root: Path, db, options: ScanOptions, workers: int | None, exclude, quiet: bool, client,
          started: float) -> ScanReport:
    report = ScanReport(root=str(root), detect_megapixels=_megapixels(options))
    with Store(db) as store:
        fingerprint = options.fingerprint()
        rescan_all = store.meta("scan_options") not in (None, fingerprint)
        store.db.execute("INSERT OR REPLACE INTO meta VALUES ('scan_options', ?)", (fingerprint,))
        where = {"dask": client.scheduler.address} if client is not None else {}
        run_id = store.start_run("scan", {"root": str(root), **asdict(options), **where})
        skipped: list[tuple[Path, str]] = []
        paths = find_photos(root, exclude=exclude, skipped=skipped)
        report.photos = len(paths)
        _record_skipped(store, skipped, run_id, report)
        todo = _changed_files(store, paths, rescan_all, report, quiet)
        if root.is_dir():
            present = {media_path(p) for p in paths + [path for path, _ in skipped]}
            report.missing = store.mark_missing(present, str(root.resolve()))
        with progress_bar("Finding faces", len(todo), quiet) as advance, \
                closing(_process_all(todo, options, workers, client)) as results:  # stops workers on error
            for result in results:
                faces = result.pop("faces")
                store.save_media(run_id=run_id, faces=faces, **result)
                report.scanned += 1
                report.faces += len(faces)
                if result.get("error"):
                    report.errors.append((result["path"], result["error"]))
                else:
                    report.without_face += not faces
                    if result.get("width"):
                        _note_resolution(report, (result["width"], result["height"]), options.min_face,
                                         options.detector)
                advance()
        report.errors.sort()
        report.seconds = time.perf_counter() - started
        store.finish_run(run_id, asdict(report))
    return report


def _megapixels(options: ScanOptions) -> float:
    """The detector's working resolution in megapixels."""
    return options.megapixels or get_detector(options.detector or PHOTO_DETECTOR).megapixels


def _record_skipped(store: Store, skipped: list[tuple[Path, str]], run_id: int,
                    report: ScanReport) -> None:
    """FIFOs, sockets, devices and unreadable folders: stored and reported as unreadable."""
    for path, why in skipped:
        name = media_path(path)
        store.save_media(name, size=None, mtime=None, digest=None, run_id=run_id, faces=[], error=why)
        report.errors.append((name, why))


def smallest_findable_face(size: tuple[int, int], megapixels: float,
                           smallest: int = SMALLEST_DETECTABLE_FACE) -> int:
    """The narrowest face (in the photo's own pixels) the detector can find in a photo of this
    ``size`` at ``megapixels``, for a detector that finds faces from ``smallest`` px at its
    working resolution; 0 when it searches the photo at full size or larger."""
    working = working_scale(size, megapixels)
    return round(smallest / working) if working < 1 else 0


def _note_resolution(report: ScanReport, size: tuple[int, int], min_face: int,
                     detector: str | None = None) -> None:
    smallest = smallest_findable_face(size, report.detect_megapixels,
                                      _smallest_at_working(detector or PHOTO_DETECTOR))
    if smallest > min_face:  # faces the user asked for (--min-face) may be missed
        report.downscaled += 1
        if smallest > report.smallest_face:
            report.smallest_face, report.largest_size = smallest, tuple(size)


def _smallest_at_working(detector: str) -> int:
    """Narrowest face (px at the working resolution) a scan with ``detector`` finds: MTCNN's
    window when MTCNN runs, alone or as the finer pass; else dlib's ~60 px."""
    if detector in FINER_PASS_AFTER:
        from facecluster.detect.mtcnn import MissingWeights, weights_folder

        try:
            weights_folder()
            detector = "mtcnn"
        except MissingWeights:
            pass
    return DETECTOR_SMALLEST_FACE.get(detector, SMALLEST_DETECTABLE_FACE)


def _changed_files(store: Store, paths: list[Path], rescan_all: bool, report: ScanReport,
                   quiet: bool) -> list[tuple[str, int, float, str | None]]:
    """(path, size, mtime, hash) of files to read; recognises unchanged and moved files."""
    todo = []
    with progress_bar("Checking files", len(paths), quiet) as advance:
        for path in paths:
            advance()
            try:
                stat = path.stat()
            except OSError:  # a broken link or a vanished file: the worker reports why
                todo.append((media_path(path), 0, 0.0, None))
                continue
            resolved = media_path(path)
            known = store.media_by_path(resolved)
            if (not rescan_all and known and known["status"] != "missing"
                    and known["size"] == stat.st_size and known["mtime"] == stat.st_mtime):
                report.unchanged += 1
                if known["status"] == "error":  # still unreadable: say so on every run
                    report.errors.append((resolved, known["error"]))
                continue
            digest = _hash_or_none(path)
            if not rescan_all and digest and _reuse_known_content(store, known, digest, resolved, stat):
                report.moved += known is None
                report.unchanged += known is not None
                continue
            todo.append((resolved, stat.st_size, stat.st_mtime, digest))
    return todo


def _reuse_known_content(store: Store, known, digest: str, path: str, stat) -> bool:
    """True when the store already has this exact content (touched or moved file)."""
    if known and known["hash"] == digest and known["status"] != "error":
        store.touch_media(known["id"], stat.st_size, stat.st_mtime)
        return True
    for twin in store.media_by_hash(digest):
        if twin["status"] == "missing" or not Path(twin["path"]).exists():
            store.relocate_media(twin["id"], path, stat.st_size, stat.st_mtime)
            return True
    return False


def _hash_or_none(path: Path) -> str | None:
    try:
        return file_hash(path)
    except (OSError, MediaError):  # the worker reports why
        return None


# -- worker side ------------------------------------------------------------------------------
_local = threading.local()


def _models() -> dict:
    """This thread's options, detector and embedder: one set per worker process of a local
    scan, and per thread of a Dask worker (dlib's detectors keep scratch state, so threads
    must not share one)."""
    if not hasattr(_local, "models"):
        _local.models = {}
    return _local.models


def _init_worker(options: ScanOptions) -> None:
    cv2.setNumThreads(1)
    models = _models()
    models["options"] = options
    models["detector"] = get_detector(options.detector or PHOTO_DETECTOR)
    models["embedder"] = get_embedder(options.embedder, options.jitter)


def _process_all(todo, options: ScanOptions, workers: int | None, client=None):
    """Results of :func:`_process_photo` for every item of ``todo``, in the order they finish:
    from local worker processes, or from the Dask cluster of ``client``."""
    if client is not None:
        yield from _process_on_dask(todo, options, client)
        return
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(todo) < 2:
        _init_worker(options)
        yield from map(_process_photo, todo)
        return
    context = multiprocessing.get_context("spawn")  # dlib and ONNX Runtime dislike fork
    with context.Pool(workers, _init_worker, (options,)) as pool:
        yield from pool.imap_unordered(_process_photo, todo, chunksize=1)


def _process_photo(item: tuple[str, int, float, str | None]) -> dict:
    path, size, mtime, digest = item
    result = {"path": path, "size": size, "mtime": mtime, "digest": digest, "faces": []}
    try:
        models = _models()
        faces, (width, height) = find_faces(path, models["detector"], models["embedder"],
                                            models["options"])
        result.update(faces=faces, width=width, height=height)
    except MediaError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd photo must not stop a 100,000-photo scan
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


# -- Dask: the same work on the workers of a cluster ------------------------------------------
DASK_CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler, and to wait for a first worker
DASK_TASKS_PER_THREAD = 3  # photos in flight per worker thread: none idles, the client's memory is bounded
DASK_INSTALL = "pip install 'facecluster[dask]'"
DASK_DOCS = "see docs/dask.md"


class DaskError(RuntimeError):
    """The Dask cluster cannot do the scan; the message is one sentence that says why and what
    to do. Raised before anything is written, or, once the scan runs, with every photo finished
    so far kept in the store."""


class _NotShared(Exception):
    """Raised on a Dask worker that cannot find a photo: the client decides whether the photo
    vanished (``result`` is then stored, as a local scan would) or the worker does not share the
    photos' folder."""

    def __init__(self, worker: str, result: dict):
        super().__init__(worker, result)
        self.worker, self.result = worker, result


class _OtherVersion(Exception):
    """Raised on a Dask worker (one that joined after the scan's check) with another version."""

    def __init__(self, who: str, version: str):
        super().__init__(who, version)
        self.who, self.version = who, version


def installed_version() -> str:
    """facecluster's installed version ("unknown" when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facecluster")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def dask_client(dask):
    """A checked ``distributed.Client`` for ``dask`` (a scheduler address, connected here and
    closed after the block; or a Client, used as it is), or None for None. Raises
    :class:`DaskError` when the scheduler cannot be reached, has no workers, or a worker runs
    another facecluster version."""
    if dask is None:
        yield None
    elif isinstance(dask, (str, os.PathLike)):
        client = connect_dask(str(dask))
        try:
            yield client
        finally:
            client.close()
    else:
        _check_cluster(dask)
        yield dask


def connect_dask(address: str):
    """A ``distributed.Client`` connected to the scheduler at ``address`` and checked (see
    :func:`dask_client`)."""
    try:
        from distributed import Client
    except ImportError:
        raise DaskError(f"scanning on a Dask cluster needs the Dask extra: {DASK_INSTALL}") from None
    unreachable = DaskError(f"cannot reach a Dask scheduler at {address}: start one there with "
                            f"`dask scheduler` and check the address and port ({DASK_DOCS})")
    try:
        _reachable(address)
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except ValueError:
        raise DaskError(f"{address!r} is not a Dask scheduler address: give tcp://HOST:8786") from None
    except Exception:  # noqa: BLE001 - refused, unknown host, timed out: all say the same to a user
        raise unreachable from None
    try:
        _check_cluster(client)
    except BaseException:
        client.close()
        raise
    return client


def _reachable(address: str) -> None:
    """Raises ValueError for an address that is not one, and another exception when no Dask
    scheduler answers there within :data:`DASK_CONNECT_TIMEOUT`.

    Checked before a Client is made: a Client retries a refused connection until its timeout,
    and one that failed to connect holds the interpreter for 20 s at exit."""
    import asyncio
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.core import rpc

    scheme, location = parse_address(address)
    if scheme != "tcp":  # tls:// needs the security settings only a Client reads
        return
    host, port = parse_host_port(location)
    socket.create_connection((host, port), timeout=DASK_CONNECT_TIMEOUT).close()

    async def identity() -> dict:
        scheduler = rpc(address, timeout=DASK_CONNECT_TIMEOUT)
        try:
            return await scheduler.identity()
        finally:
            await scheduler.close_rpc()

    with ThreadPoolExecutor(1) as thread:  # a thread of its own: the caller may run an event loop
        answer = thread.submit(asyncio.run, asyncio.wait_for(identity(), DASK_CONNECT_TIMEOUT)).result()
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise OSError(f"no Dask scheduler at {address}")


def _check_cluster(client) -> None:
    """At least one worker, and every worker has this facecluster version."""
    address = client.scheduler.address
    try:
        client.wait_for_workers(1, timeout=DASK_CONNECT_TIMEOUT)
    except TimeoutError:
        raise DaskError(f"no Dask workers are connected to the scheduler at {address}: start them "
                        f"with `dask worker {address} --nthreads 1` ({DASK_DOCS})") from None
    mine = installed_version()
    versions = client.get_versions(packages=["facecluster"])
    machines = [(f"worker at {worker}", info) for worker, info in sorted(versions["workers"].items())]
    for who, info in machines + [(f"scheduler at {address}", versions.get("scheduler"))]:
        theirs = ((info or {}).get("packages") or {}).get("facecluster")
        if theirs != mine:  # the scheduler too: it unpickles the tasks, so imports facecluster
            raise DaskError(_version_sentence(who, theirs, mine))


def _version_sentence(who: str, theirs: str | None, mine: str) -> str:
    """``who``: "worker at ADDRESS" or "scheduler at ADDRESS"."""
    if theirs is None:
        return (f"facecluster is not installed on the Dask {who}: install facecluster {mine} on the "
                f"scheduler and every worker ({DASK_DOCS})")
    return (f"the Dask {who} has facecluster {theirs} and this machine {mine}: install the same "
            f"version on the scheduler and every worker, and restart them ({DASK_DOCS})")


def _dask_photo(item: tuple[str, int, float, str | None], options: ScanOptions, version: str) -> dict:
    """:func:`_process_photo` on a Dask worker: models are loaded once per worker thread and kept
    for later photos and scans with the same options."""
    from distributed import get_worker

    _dask_models(options, version)
    result = _process_photo(item)
    if result.get("error") and not os.path.lexists(item[0]):
        raise _NotShared(get_worker().address, result)
    return result


def _dask_models(options: ScanOptions, version: str) -> dict:
    """This worker thread's models for ``options``; refuses a client of another version."""
    if version != installed_version():
        from distributed import get_worker

        raise _OtherVersion(f"worker at {get_worker().address}", installed_version())
    models = _models()
    if models.get("options") != options:
        _init_worker(options)
    return models


def _dask_warm(options: ScanOptions, version: str) -> None:
    """Load every model the scan uses, converting it to ONNX if this machine has not yet."""
    models = _dask_models(options, version)
    embedder, detector = models["embedder"], models["detector"]
    embedder.embed(np.zeros((1, embedder.chip_size, embedder.chip_size, 3), np.uint8))
    for lazy in ("_session", "_sessions"):  # the ONNX detectors' converted weights
        getattr(detector, lazy, None)
    if detector.name in FINER_PASS_AFTER:
        _small_detector()


def _dask_warm_up(client, options: ScanOptions, version: str) -> None:
    """Models loaded by one worker of each machine before the photos are sent: the machine's
    other worker processes then find them converted in its cache, rather than all converting
    them at the same time. A worker that cannot run the scan stops it here."""
    from distributed import as_completed
    from distributed.comm import get_address_host

    first = {}
    for worker in sorted(client.nthreads()):
        first.setdefault(get_address_host(worker), worker)
    futures = [client.submit(_dask_warm, options, version, workers=[worker], allow_other_workers=True,
                             pure=False) for worker in first.values()]
    for _, outcome in as_completed(futures, loop=client.loop, with_results=True, raise_errors=False):
        if outcome is not None:
            raise _dask_failure(outcome, client)


def _process_on_dask(todo, options: ScanOptions, client):
    """Results of the photos in ``todo`` from the cluster's workers, in the order they finish.

    Photos are submitted a few per worker thread at a time (:data:`DASK_TASKS_PER_THREAD`) and
    topped up as results arrive, so that a million photos never sit in the client's memory and
    every result reaches the store as soon as it is back. Stopping (an error, Ctrl-C, the
    generator closed) cancels the photos still on the cluster."""
    from distributed import as_completed

    if not todo:
        return
    version = installed_version()
    _dask_warm_up(client, options, version)
    items = iter(todo)
    pending: dict = {}  # future -> item
    in_flight, checked = _dask_in_flight(client), time.monotonic()

    def submit(batch) -> list:
        futures = client.map(_dask_photo, batch, options=options, version=version, pure=False)
        pending.update(zip(futures, batch))
        return futures

    finished = as_completed(submit(list(islice(items, in_flight))), loop=client.loop,
                            with_results=True, raise_errors=False)
    try:
        for future, outcome in finished:
            item = pending.pop(future)
            yield _dask_result(outcome, item, client)
            if time.monotonic() - checked > 5:  # workers may have joined or left
                in_flight, checked = _dask_in_flight(client), time.monotonic()
            more = list(islice(items, max(0, in_flight - len(pending))))
            if more:
                finished.update(submit(more))
    finally:
        if pending:
            client.cancel(list(pending))


def _dask_in_flight(client) -> int:
    return max(2, DASK_TASKS_PER_THREAD * sum(client.nthreads().values()))


def _dask_result(outcome, item: tuple[str, int, float, str | None], client) -> dict:
    """The stored result of one photo from its future's outcome; stops the scan with a
    :class:`DaskError` when the cluster, not the photo, is at fault."""
    from distributed.scheduler import KilledWorker

    if isinstance(outcome, dict):
        return outcome
    if isinstance(outcome, tuple) and len(outcome) == 3:  # a task's error: (type, value, traceback)
        outcome = outcome[1]
    path, size, mtime, digest = item
    if isinstance(outcome, _NotShared):
        if not os.path.lexists(path):  # it vanished: the worker's error is the local scan's
            return outcome.result
        raise DaskError(f"the Dask worker at {outcome.worker} cannot see {path}: every worker must "
                        f"see the photos at the same path as this machine, e.g. on a shared mount "
                        f"({DASK_DOCS}); {_KEPT}")
    if isinstance(outcome, KilledWorker):  # the photo killed every worker that tried it
        return {"path": path, "size": size, "mtime": mtime, "digest": digest, "faces": [],
                "error": "the Dask workers reading it died (out of memory?)"}
    raise _dask_failure(outcome, client)


_KEPT = "every photo finished so far is kept; run the scan again to go on"


def _dask_failure(outcome, client) -> DaskError:
    """The sentence for a task that failed because of the cluster (the scheduler lost, another
    version, facecluster missing on a worker)."""
    from concurrent.futures import CancelledError

    if isinstance(outcome, tuple) and len(outcome) == 3:
        outcome = outcome[1]
    if isinstance(outcome, _OtherVersion):
        return DaskError(f"{_version_sentence(outcome.who, outcome.version, installed_version())}; "
                         f"{_KEPT}")
    if isinstance(outcome, CancelledError):
        return DaskError(f"lost the Dask scheduler at {client.scheduler.address}; {_KEPT}")
    if isinstance(outcome, ImportError) or "deserializ" in str(outcome):
        return DaskError(f"the Dask cluster at {client.scheduler.address} could not load this "
                         f"facecluster's code: install facecluster {installed_version()} on the "
                         f"scheduler and every worker, and restart them ({DASK_DOCS}); {_KEPT}")
    why = " ".join(str(outcome).split())  # Dask's messages run over several lines
    return DaskError(f"a Dask worker failed: {type(outcome).__name__}: {why}; {_KEPT}")


def find_faces(path, detector, embedder, options: ScanOptions) -> tuple[list[FaceRecord], tuple[int, int]]:
    """Detect, align and embed every face of one photo; returns the faces and the photo's size.

    Every page of a multi-page TIFF and sampled frames of an animation are searched (see
    :func:`facecluster.media.frames_to_scan`); their faces get ``time`` = the frame number, so
    that only faces of the same frame count as "one photo" for clustering. Frames after a
    damaged one are skipped. Detection runs on a reduced decode when the photo is larger than
    the detector's working resolution; landmarks and chips come from the coarsest decode in
    which the narrowest face is :data:`CHIP_SOURCE_WIDTH` px wide, or from full size (reduced too
    past :data:`facecluster.media.MAX_DECODE_PIXELS`); landmarks and boxes are stored in
    full-resolution pixels either way.
    """
    max_pixels = (options.megapixels or detector.megapixels) * 1e6
    photo = load_photo(path, max_pixels=max_pixels)
    faces = _faces_in_frame(path, photo, detector, embedder, options)
    for frame in photo.frames[1:]:
        try:
            frame_photo = load_photo(path, max_pixels=max_pixels, frame=frame)
        except MediaError:
            break
        faces += _faces_in_frame(path, frame_photo, detector, embedder, options)
    return faces, photo.size


def _faces_in_frame(path, photo: Photo, detector, embedder, options: ScanOptions) -> list[FaceRecord]:
    megapixels = options.megapixels or detector.megapixels
    working = working_scale(photo.size, megapixels)
    detections = detect_faces(detector, photo.pixels, photo.scale, working, options.min_face)
    detections += _finer_pass(photo, detector, detections, megapixels, options.min_face)
    if not detections:
        return []
    narrowest = min(max(1, d.box[2] - d.box[0]) for d in detections)
    pixels, scale = photo.at_least(min(1.0, CHIP_SOURCE_WIDTH / narrowest))
    aligned = [_align(pixels, scale, d.box, embedder) for d in detections]
    chips = np.stack([chip for _, chip in aligned])
    vectors = embedder.embed(chips)
    time_ = float(photo.frame) if len(photo.frames) > 1 else None
    return [
        FaceRecord(box=d.box, score=d.score, detector=d.detector or detector.name,
                   landmarks=landmarks, sharpness=sharpness(chip), chip_jpeg=encode_jpeg(chip),
                   model=embedder.model_id, embedding=vector, time=time_)
        for d, (landmarks, chip), vector in zip(detections, aligned, vectors)
    ]


def _finer_pass(photo: Photo, detector, found: list, megapixels: float, min_face: int) -> list:
    """Smaller faces, where looking for them pays: the dlib detector found nothing (a group
    photo whose faces are all below its reach) or a face less than twice as wide as the
    narrowest it can find (a group, a crowd, people further away), so faces below its reach
    are likely. MTCNN then looks for faces from ~12 px at the working resolution (~40 px in a
    12 MP photo at 1 MP, 20 px at least) up to that reach, on the pixels already decoded.

    Only faces below the reach: MTCNN also finds larger faces HOG misses (turned, in shadow;
    18 real ones in jurassic_park's 26 photos where HOG finds none), but those embed poorly
    and cost clustering quality (jurassic_park BCubed F 0.92 -> 0.885, five_celebrity split
    into 6 people), so they are left to ``--detector mtcnn``/``cnn``. Photos where the dlib
    detector found only large faces cost nothing more."""
    if detector.name not in FINER_PASS_AFTER:
        return []
    working = working_scale(photo.size, megapixels)
    below = round(SMALLEST_DETECTABLE_FACE / working)  # the dlib detector's reach, photo pixels
    reach = max(finer_pass_reach(photo.size, megapixels), min_face)
    if reach >= below or (found and min(d.box[2] - d.box[0] for d in found) >= 2 * below):
        return []
    small = _small_detector()
    if small is None:
        return []
    return detect_smaller_faces(small, photo.pixels, photo.scale, reach, below, found, min_face,
                                FINER_PASS_MIN_SCORE)


def _small_detector():
    """MTCNN for the finer pass, loaded once per process (per thread of a Dask worker); None
    without its weights."""
    models = _models()
    if "small" not in models:
        from facecluster.detect.mtcnn import MissingWeights

        try:
            detector = get_detector("mtcnn")
            detector._sessions  # load (and convert, the first time) now
            models["small"] = detector
        except MissingWeights:
            models["small"] = None
    return models["small"]


def _align(pixels: np.ndarray, scale: float, box, embedder) -> tuple[list, np.ndarray]:
    """Landmarks (full-resolution pixels) and chip of a face; ``pixels`` are the photo at
    ``scale`` of full size (reduced when the face is large enough in them)."""
    if scale == 1.0:
        landmarks, chip = align_face(pixels, box, embedder.chip_size, embedder.chip_padding)
        return landmarks.tolist(), chip
    scaled = tuple(round(v * scale) for v in box)
    landmarks, chip = align_face(pixels, scaled, embedder.chip_size, embedder.chip_padding)
    return (np.asarray(landmarks) / scale).tolist(), chip


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's centre: low for blurred faces."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    return float(cv2.Laplacian(grey[h // 4: 3 * h // 4, w // 4: 3 * w // 4], cv2.CV_64F).var())


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes()
