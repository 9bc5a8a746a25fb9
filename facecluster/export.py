"""Write the people folders: photo links, aligned face chips, montages, people.json, faces.csv.

Layout of the output folder::

    person_0001/            (or the person's name once they have one)
        photos/            links to (or copies of) every photo the person is in
        faces/             aligned 150 px chips, best first: 0001_face123.jpg
        montage.jpg        up to 5 x 5 of the best faces
    unknown/               faces that belong to nobody else
    people.json  faces.csv  index.html

What export may delete, and what survives
-----------------------------------------
The manifest ``.facecluster-export.json`` lists every folder, file and link an export wrote,
with what identifies it (inode; size and modification time of a file; target of a link). A
re-export removes an entry only if it is still exactly that: same kind, same identity, reached
from the output folder through real folders only (every component is checked without following
a symbolic link), never an absolute path or one with ``..``, never the store or the manifest.
Folders are only removed when empty, so a file you add inside a person folder keeps it (and the
next export writes into it again); a hard link to a photo only while the photo has another name. Anything else -- your files, folders and links, a file of
ours you edited -- is never touched. A manifest that cannot be read is taken as empty, with a
warning: nothing is deleted on its word.

A name that holds something export did not make is never written through or adopted: a person
folder takes the next free name (``person_001_2``, ``Holiday_Photos_2``, ``unknown_2``), and a
file such as ``people.json`` is written beside it (``people_2.json``). Each case is a warning,
printed on stderr and listed in the returned summary's ``warnings``.

The new export is built in a hidden staging folder inside the output folder, from one snapshot
of the store (a scan running meanwhile does not disturb it), and only then swapped in. A failure
while building (a full disk, say) leaves the previous export as it was, removes the staging
folder and raises :class:`ExportError` with one sentence; an export killed midway leaves the
staging folder listed in the manifest, and the next export removes it. The staging copy needs
room for the new chips and montages (and the photos, with ``--copy``) beside the old ones.
Two exports into one folder at once are refused (a lock on the folder).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager, suppress
from pathlib import Path

from facecluster.media import montage
from facecluster.progress import printable, progress_bar
from facecluster.store import Store
from facecluster.store.people import folder_name, rejected_faces

MANIFEST = ".facecluster-export.json"
MANIFEST_VERSION = 2
STAGING_PREFIX = ".facecluster-export-"
UNKNOWN = "unknown"
LINKS = ("symlink", "hardlink", "copy")
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class ExportError(Exception):
    """An export that could not finish; the message says what happened and what to do."""


def export(db: str | os.PathLike, output: str | os.PathLike, link: str = "symlink",
           montage_grid: int = 5, quiet: bool = False) -> dict:
    """Export the latest clustering in ``db`` to ``output``; returns the people summary.

    ``link`` is how photos appear in person folders: ``symlink``, ``hardlink`` or ``copy``.
    Raises :class:`ExportError` when the output cannot be written (full disk, permissions).
    """
    if link not in LINKS:
        raise ValueError(f"link must be symlink, hardlink or copy, not {link!r}")
    output = Path(output).expanduser()
    with _export_errors(output):
        output.mkdir(parents=True, exist_ok=True)
        with OutputFolder(output, _store_files(db, output)) as out:
            summary = _export_into(out, db, link, montage_grid, quiet)
    if not quiet:
        for warning in summary["warnings"]:
            print(f"warning: {printable(warning)}", file=sys.stderr)
    return summary


def _export_into(out: OutputFolder, db, link: str, grid: int, quiet: bool) -> dict:
    stage = out.start_staging()
    try:
        with Store(db) as store, _snapshot(store), _export_errors(out.path):  # not the store's
            summary = _write_export(store, out, stage, link, grid, quiet)
        placed = out.swap_in(stage)
        summary["report"] = str(out.path / placed.get("index.html", "index.html"))
    except BaseException:
        with suppress(OSError):  # keep the first error: it says what went wrong
            out.drop_staging(stage)
        raise
    return summary


def _write_export(store: Store, out: OutputFolder, stage: Path, link: str, grid: int,
                  quiet: bool) -> dict:
    """Write the whole export into the staging folder ``stage``."""
    groups = _groups(store)
    for faces in groups.values():
        for face in faces:
            face["path"] = _text(face["path"])
    names = store.people()
    folders = out.free_folder_names(_folder_names(groups, names))
    people, rows = [], []
    with progress_bar("Exporting", sum(len(f) for f in groups.values()), quiet) as advance:
        for person_id, faces in groups.items():
            _write_person(store, stage / folders[person_id], faces, link, grid, advance, out.warnings)
            rows += [_csv_row(face, person_id, folders[person_id]) for face in faces]
            if person_id is not None:
                people.append({"id": person_id, "name": names.get(person_id),
                               "folder": folders[person_id], "faces": len(faces),
                               "photos": len({f["path"] for f in faces})})
    rejected = store.faces(rejected_faces(store))
    rows += [_csv_row({**dict(face), "path": _text(face["path"]), "confidence": 0.0}, None, "rejected")
             for face in rejected]  # listed, in no folder
    summary = {"people": people, "unknown_faces": len(groups.get(None, [])),
               "rejected_faces": len(rejected),
               "unknown_folder": folders.get(None), "counts": store.counts(),
               "unreadable": [(_text(p), why) for p, why in store.errors()],
               "without_face": [_text(p) for p in store.without_faces()],
               "runs": _latest_runs(store), "warnings": out.warnings}
    from facecluster.video.timeline import write_video_outputs

    write_video_outputs(store, stage, groups, folders, summary)  # timeline, screen time
    # ensure_ascii keeps names that are not UTF-8 as \udcXX escapes: lossless, valid JSON
    (stage / "people.json").write_text(json.dumps(summary, indent=2, default=str))
    _write_csv(stage / "faces.csv", rows)
    from facecluster.report import write_report

    write_report(stage, _printable(summary))
    return summary


@contextmanager
def _snapshot(store: Store):
    """Everything read inside sees one state of the store, even while a scan writes to it
    (SQLite WAL: a read transaction keeps its snapshot)."""
    store.db.execute("BEGIN")
    try:
        yield
    finally:
        store.db.execute("ROLLBACK")  # nothing was written


def _groups(store: Store) -> dict:
    """Person id (None: unknown) -> faces of the last clustering, people ordered by number of
    faces, faces best first. Rejected faces and faces scanned since the clustering are left out."""
    assigned = store.assignments()
    groups = defaultdict(list)
    for row in store.faces():
        if row["id"] in assigned:
            person, confidence = assigned[row["id"]]
            groups[person].append({**dict(row), "confidence": confidence or 0.0})
    for faces in groups.values():
        faces.sort(key=lambda f: (-f["confidence"], -(f["sharpness"] or 0), f["id"]))
    order = sorted((p for p in groups if p is not None), key=lambda p: (-len(groups[p]), p))
    return {p: groups[p] for p in order + ([None] if None in groups else [])}


def _folder_names(groups: dict, names: dict) -> dict:
    """Person id -> folder: the person's name, else person_0012 (the id `facecluster people`
    and the review page show); a name two people share as a file name gets the id appended."""
    folders, used = {None: UNKNOWN}, {UNKNOWN}
    for person_id in (p for p in groups if p is not None):
        folder = folder_name(person_id, names.get(person_id))
        if folder in used:
            folder = f"{folder}_{person_id}"
        folders[person_id] = folder
        used.add(folder)
    return folders


def _write_person(store: Store, folder: Path, faces: list, link: str, grid: int, advance,
                  warnings: list) -> None:
    (folder / "faces").mkdir(parents=True, exist_ok=True)
    (folder / "photos").mkdir(exist_ok=True)
    linked: set[str] = set()
    best = []  # chips for the montage
    for rank, face in enumerate(faces, start=1):
        chip = _chip(store, face["id"])  # None: the face is gone (tolerated, not expected)
        if chip is not None:
            (folder / "faces" / f"{rank:04d}_face{face['id']}.jpg").write_bytes(chip)
            if len(best) < grid * grid:
                best.append(chip)
        if face["path"] not in linked and not is_capture(face["path"]):  # a stream has no file
            linked.add(face["path"])
            _link_or_warn(Path(face["path"]), folder / "photos", link, warnings)
        advance()
    sheet = io.BytesIO()  # Pillow can leave a truncated file on a full disk without a word
    montage(best, grid).save(sheet, "JPEG", quality=88)
    (folder / "montage.jpg").write_bytes(sheet.getvalue())


def _chip(store: Store, face_id: int) -> bytes | None:
    row = store.db.execute("SELECT chip FROM faces WHERE id=?", (int(face_id),)).fetchone()
    return row[0] if row else None


def is_capture(path: str) -> bool:
    """True for the store name of a webcam or stream capture (``webcam:0@...``, ``rtsp://...``)."""
    return path.startswith("webcam:") or "://" in path


def _link_or_warn(source: Path, folder: Path, link: str, warnings: list) -> None:
    if link != "symlink" and not source.is_file():
        warnings.append(f"{source} is gone: not {'copied' if link == 'copy' else 'linked'}")
        return
    _link_photo(source, folder, link)


def _link_photo(source: Path, folder: Path, link: str) -> str:
    target = folder / source.name
    suffix = 2
    while target.exists() or target.is_symlink():
        target = folder / f"{source.stem}_{suffix}{source.suffix}"
        suffix += 1
    if link == "symlink":
        target.symlink_to(source.resolve())
    elif link == "hardlink":
        try:
            os.link(source, target)
        except OSError as error:  # another file system: a copy is the next best thing
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            shutil.copy2(source, target)
    else:
        shutil.copy2(source, target)
    return target.name


def _text(path) -> str:
    """A path from the store as str; bytes (a name that is not UTF-8) keep every byte as a
    surrogate escape, so links and faces.csv get the exact original name back."""
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _printable(value):
    """``value`` with every string safe to write as UTF-8 (for index.html)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    return value


def _csv_row(face: dict, person_id: int | None, folder: str) -> dict:
    return {"face_id": face["id"], "photo": face["path"], "time": face["time"],
            "left": face["left"], "top": face["top"], "right": face["right"],
            "bottom": face["bottom"], "person_id": person_id, "person": folder,
            "confidence": round(float(face["confidence"]), 4)}


def _write_csv(path: Path, rows: list[dict]) -> None:
    # surrogateescape writes a name that is not UTF-8 back as its original bytes
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.DictWriter(f, fieldnames=["face_id", "photo", "time", "left", "top", "right",
                                               "bottom", "person_id", "person", "confidence"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["face_id"]))


def _latest_runs(store: Store) -> list[dict]:
    rows = store.db.execute("SELECT command, params, stats, started, finished FROM runs"
                            " WHERE id IN (SELECT MAX(id) FROM runs GROUP BY command)").fetchall()
    return [{"command": r[0], "params": json.loads(r[1] or "{}"), "stats": json.loads(r[2] or "{}"),
             "seconds": round((r[4] or r[3]) - r[3], 2)} for r in rows]


def _store_files(db, output: Path) -> set[str]:
    """Names in ``output`` that belong to the store: never claimed, whatever the manifest says."""
    db = Path(db).expanduser().absolute()
    if db.parent.resolve() != output.resolve():
        return set()
    return {db.name + suffix for suffix in ("", "-wal", "-shm", "-journal")}


@contextmanager
def _export_errors(output: Path):
    """Turn a failure to write the output (a full disk, say) into one :class:`ExportError`."""
    try:
        yield
    except OSError as error:
        raise ExportError(_failure_sentence(error, output)) from error


def _failure_sentence(error: OSError, output: Path) -> str:
    where = _shown(error.filename2 or error.filename, output)  # a copy's target, not its source
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full while writing {where}: free some space and run export again"
    if error.errno == errno.EFBIG:
        return f"file size limit reached while writing {where}: raise the limit and run export again"
    return (f"could not write {where} ({error.strerror or error}): check that folder and run "
            "export again")


def _shown(filename, output: Path) -> str:
    """The file an error names, as its place in the finished export (not the staging copy)."""
    if not filename:
        return f"the export to {printable(output)}"
    parts = Path(os.fsdecode(filename)).parts
    for i, part in enumerate(parts):
        if part.startswith(STAGING_PREFIX):
            return printable(str(output.joinpath(*parts[i + 1:])))
    return printable(os.fsdecode(filename))


# -- ownership: what the manifest proves we wrote ------------------------------------------------
class OutputFolder:
    """The output folder, opened once; every path below it is reached one folder at a time
    without following a symbolic link, and only entries the manifest proves ours are removed."""

    def __init__(self, path: Path, protected: set[str]):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._lock()
        self.protected = protected | {MANIFEST}
        self.warnings: list[str] = []
        self.previous = [c for c in self._read_manifest() if self.matches(c)]
        self.claims = list(self.previous)  # what the manifest will list

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # and the lock with it

    def _lock(self) -> None:
        """One export at a time into a folder: two would take each other's files for the user's."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ExportError(f"another export is writing to {printable(self.path)}: let it finish "
                              "and run export again") from None
        except OSError:  # a file system without locks: go on without
            pass

    # -- the manifest
    def _read_manifest(self) -> list:
        try:
            fd = os.open(MANIFEST, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
            with open(fd, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return self._unusable_manifest("cannot be read")
        if isinstance(data, list):
            return self._unusable_manifest("comes from an older facecluster and does not say "
                                           "what is inside the folders it lists")
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            return self._unusable_manifest("is damaged")
        return [entry for entry in data["entries"] if isinstance(entry, dict)]

    def _unusable_manifest(self, why: str) -> list:
        self.warnings.append(f"{MANIFEST} {why}: nothing of the previous export is removed, "
                             "delete its folders yourself if you no longer need them")
        return []

    def save(self, verify: bool = True) -> None:
        """Write the manifest atomically: the claims that still hold, or (``verify=False``) all
        of them, including those for entries still on their way from the staging folder."""
        if verify:
            self.claims = [c for c in self.claims if self.matches(c)]
        self.claims = _unique(self.claims)
        text = ",\n".join(json.dumps(c) for c in self.claims)
        body = f'{{"facecluster_export": {MANIFEST_VERSION}, "entries": [\n{text}\n]}}\n'
        handle, temporary = tempfile.mkstemp(prefix=MANIFEST + ".", dir=self.path)
        try:
            with open(handle, "w", encoding="ascii") as f:
                os.fchmod(f.fileno(), 0o644)  # not mkstemp's 0600: a file like the others
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path / MANIFEST)  # replaces a link there, not its target
        except BaseException:
            os.unlink(temporary)
            raise

    # -- checking and removing one entry
    def matches(self, claim: dict) -> bool:
        """True if ``claim`` is a safe path that still holds exactly what we wrote there."""
        with self._entry(claim) as (parent, name, info):
            return info is not None and _same(claim, info, parent, name)

    def remove(self, claim: dict) -> None:
        with self._entry(claim) as (parent, name, info):
            if info is None or not _same(claim, info, parent, name):
                return
            if claim["kind"] == "staging":
                _purge(parent, name)
            elif claim["kind"] == "dir":
                try:
                    os.rmdir(name, dir_fd=parent)
                except OSError as error:  # a folder that holds the user's files stays
                    if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
            else:
                os.unlink(name, dir_fd=parent)

    @contextmanager
    def _entry(self, claim):
        """(parent folder fd, name, lstat) of a claim's path; info None when unsafe or absent."""
        parts = _claimable_parts(claim, self.protected)
        parent = _open_folder(self.fd, parts[:-1]) if parts else None
        if parent is None:
            yield None, None, None
            return
        try:
            yield parent, parts[-1], _lstat(parent, parts[-1])
        finally:
            os.close(parent)

    # -- naming
    def free_folder_names(self, folders: dict) -> dict:
        """``folders`` with every name that holds something not ours replaced by a free one."""
        ours = {c["path"] for c in self.previous}
        chosen, used = {}, set()
        for person_id, name in folders.items():
            candidate, suffix = name, 2
            while candidate in used or (candidate not in ours and _lstat(self.fd, candidate)):
                candidate, suffix = f"{name}_{suffix}", suffix + 1
            if candidate != name:
                self.warnings.append(f"{name} was not made by facecluster: left it alone and "
                                     f"wrote {candidate} instead")
            chosen[person_id] = candidate
            used.add(candidate)
        return chosen

    # -- staging and swap
    def start_staging(self) -> Path:
        """A fresh hidden folder for the new export, listed in the manifest before anything is
        written into it (so an export killed midway is cleaned up by the next one)."""
        for claim in self.previous:  # what an interrupted export left
            if claim["kind"] == "staging":
                self.remove(claim)
        stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        self.claims.append({"path": stage.name, "kind": "staging",
                            "ino": _lstat(self.fd, stage.name).st_ino})
        try:
            self.save()
        except BaseException:
            os.rmdir(stage)
            raise
        return stage

    def swap_in(self, stage: Path) -> dict:
        """Replace the previous export with the staged one; returns {staged path: final path}
        (``index.html`` may land as ``index_2.html`` beside a user's own)."""
        staged = _claims_below(self.fd, (stage.name,))
        self.claims += staged
        self.save(verify=False)  # from here on, a crash leaves everything of ours listed
        for claim in sorted(self.previous, key=lambda c: -c["path"].count("/")):
            self.remove(claim)
        moved = self._place(stage.name, ())
        self.claims += [_moved(c, moved) for c in staged]
        self.drop_staging(stage)
        return moved

    def _place(self, stage: str, rel: tuple) -> dict:
        """Move the staged entries below ``rel`` into the output folder; merge into a folder of
        ours that stayed (it holds the user's files). Returns {staged path: final path}."""
        moved = {}
        source, target = _open_folder(self.fd, (stage, *rel)), _open_folder(self.fd, rel)
        try:
            for name in sorted(os.listdir(source)):
                path = "/".join((*rel, name))
                there = _lstat(target, name)
                if there and stat.S_ISDIR(there.st_mode) and self._ours_folder(path) \
                        and stat.S_ISDIR(_lstat(source, name).st_mode):
                    moved.update(self._place(stage, (*rel, name)))
                    continue
                final = _free_name(target, name) if there else name
                if there:
                    self.warnings.append(f"{path} was not made by facecluster: left it alone and "
                                         f"wrote {final} beside it")
                os.rename(name, final, src_dir_fd=source, dst_dir_fd=target)
                moved[path] = "/".join((*rel, final))
        finally:
            os.close(source)
            os.close(target)
        return moved

    def _ours_folder(self, path: str) -> bool:
        return any(c["path"] == path and c["kind"] == "dir" and self.matches(c) for c in self.previous)

    def drop_staging(self, stage: Path) -> None:
        """Remove the staging folder and what is left in it; list what remains ours."""
        for claim in [c for c in self.claims if c["kind"] == "staging" and c["path"] == stage.name]:
            self.remove(claim)
        self.save()


def _claimable_parts(claim, protected: set[str]) -> list[str] | None:
    """The path of a manifest entry as folder names, or None where it must never be touched:
    absolute, empty, ``.``/``..``, the store or manifest, a link at the top."""
    path, kind = claim.get("path"), claim.get("kind")
    if not isinstance(path, str) or path.startswith("/") or "\0" in path:
        return None
    try:
        os.fsencode(path)
    except UnicodeError:  # not a name the file system can hold
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] in protected \
            or parts[0].startswith(MANIFEST):
        return None
    is_staging = len(parts) == 1 and parts[0].startswith(STAGING_PREFIX)
    if (kind == "staging") != is_staging or (kind == "link" and len(parts) < 2):
        return None
    return parts


def _same(claim: dict, info: os.stat_result, parent: int, name: str) -> bool:
    """Is the entry ``info`` exactly what ``claim`` says we wrote?"""
    kind, mode, same_inode = claim.get("kind"), info.st_mode, info.st_ino == claim.get("ino")
    # Files and folders are recognised without their inode, so that an export folder copied
    # with its times (cp -a, rsync -a, a restored backup) is still ours; a folder is only ever
    # removed when empty, so this can never cost a user's file.
    if kind == "file":
        return (stat.S_ISREG(mode) and info.st_size == claim.get("size")
                and info.st_mtime_ns == claim.get("mtime_ns"))
    if kind == "hardlink":  # never the last name of a photo
        return stat.S_ISREG(mode) and same_inode and info.st_nlink > 1
    if kind == "link":
        return stat.S_ISLNK(mode) and os.readlink(name, dir_fd=parent) == claim.get("target")
    if kind == "dir":
        return stat.S_ISDIR(mode)
    if kind == "staging":  # emptied whole: only the very folder we made
        return stat.S_ISDIR(mode) and same_inode
    return False


def _claims_below(root: int, rel: tuple) -> list[dict]:
    """Claims for everything in the staging folder ``rel``, by their path in the final export."""
    claims = []
    folder = _open_folder(root, rel)
    try:
        for name in sorted(os.listdir(folder)):
            info = _lstat(folder, name)
            path = "/".join((*rel[1:], name))
            if stat.S_ISDIR(info.st_mode):
                claims.append({"path": path, "kind": "dir", "ino": info.st_ino})
                claims += _claims_below(root, (*rel, name))
            elif stat.S_ISLNK(info.st_mode):
                claims.append({"path": path, "kind": "link", "target": os.readlink(name, dir_fd=folder)})
            elif info.st_nlink > 1:
                claims.append({"path": path, "kind": "hardlink", "ino": info.st_ino})
            else:
                claims.append({"path": path, "kind": "file", "ino": info.st_ino,
                               "size": info.st_size, "mtime_ns": info.st_mtime_ns})
    finally:
        os.close(folder)
    return claims


def _moved(claim: dict, moved: dict) -> dict:
    """``claim`` at the path its entry was moved to (a staged folder may land under a new name)."""
    parts = claim["path"].split("/")
    for cut in range(len(parts), 0, -1):
        head = "/".join(parts[:cut])
        if head in moved:
            return {**claim, "path": "/".join([moved[head], *parts[cut:]])}
    return claim  # merged into a folder that stayed: the folder's own claim is the old one


def _open_folder(root: int, parts) -> int | None:
    """A descriptor of ``root/parts...`` reached without following links; None if not a folder."""
    fd = os.dup(root)
    for part in parts:
        try:
            inner = os.open(part, DIRECTORY, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = inner
    return fd


def _lstat(folder: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None


def _free_name(folder: int, name: str) -> str:
    stem, extension = os.path.splitext(name)
    suffix = 2
    while _lstat(folder, f"{stem}_{suffix}{extension}"):
        suffix += 1
    return f"{stem}_{suffix}{extension}"


def _purge(parent: int, name: str) -> None:
    """Remove ``name`` and, for a folder, everything in it, never following a link."""
    info = _lstat(parent, name)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        folder = os.open(name, DIRECTORY, dir_fd=parent)
        try:
            for child in os.listdir(folder):
                _purge(folder, child)
        finally:
            os.close(folder)
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _unique(claims: list[dict]) -> list[dict]:
    seen, kept = set(), []
    for claim in claims:
        key = json.dumps(claim, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(claim)
    return kept
