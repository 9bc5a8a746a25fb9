"""Export owns exactly what it wrote: hostile manifests, the user's files and folders, symbolic
links in the output folder, a full disk, a rescan running meanwhile, names that are not UTF-8.

Everything runs on a real store (the sample photos, scanned and clustered once) and real files.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

import facecluster
from facecluster.cli import main
from facecluster.export import MANIFEST, export

STAGING_PREFIX = ".facecluster-export-"


@pytest.fixture(scope="session")
def template(tmp_path_factory, sample_folder) -> tuple[Path, Path]:
    """(photos, store): our own copy of the sample photos, scanned and clustered."""
    root = tmp_path_factory.mktemp("template")
    photos = root / "photos"
    shutil.copytree(sample_folder, photos)
    db = root / "faces.db"
    facecluster.scan(photos, db, workers=2, quiet=True)
    facecluster.cluster(db)
    return photos, db


@pytest.fixture
def db(template, tmp_path) -> Path:
    """A copy of the template store that the test may change."""
    copy = tmp_path / "faces.db"
    shutil.copy(template[1], copy)
    return copy


def tree(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` (links not followed): path -> (kind, content or target)."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                entries[key] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[key] = ("dir", None)
            else:
                entries[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return entries


def exported(out: Path) -> dict[str, tuple]:
    """The tree of an export, without its manifest."""
    return {k: v for k, v in tree(out).items() if k != MANIFEST}


def without_report(entries: dict) -> dict:
    """``entries`` without index.html's content, which holds the time of day."""
    return {k: ("file", None) if k == "index.html" else v for k, v in entries.items()}


def first_person(summary: dict) -> str:
    return summary["people"][0]["folder"]


def assert_manifest_covers(out: Path, ignore=()) -> None:
    """Every entry in ``out`` except the user's (``ignore``) is listed in the manifest, and no
    staging folder or half-written manifest is left."""
    manifest = json.loads((out / MANIFEST).read_text())
    assert isinstance(manifest, dict), "the manifest does not list the files of the export"
    listed = {entry["path"] for entry in manifest["entries"]}
    for path in exported(out):
        if not any(path == i or path.startswith(i + "/") for i in ignore):
            assert path in listed, f"{path} is not in the manifest"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)
                 or (p.name.startswith(MANIFEST) and p.name != MANIFEST)]
    assert leftovers == []


def assert_images_whole(out: Path) -> None:
    """Every chip and montage decodes to the end (none was cut short by a full disk)."""
    for path in out.rglob("*.jpg"):
        if not path.is_symlink():
            with Image.open(path) as image:
                image.load()


def run_cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# -- hostile manifests ---------------------------------------------------------------------------
def hostile_world(root: Path, db: Path) -> Path:
    """An output folder inside ``root`` with the store, the user's files, a link to outside,
    and precious files beside it and outside; returns the output folder."""
    (root / "outside").mkdir()
    (root / "outside" / "keep.txt").write_text("outside the export")
    (root / "beside.txt").write_text("beside the output folder")
    out = root / "people"
    out.mkdir()
    shutil.copy(db, out / "faces.db")
    (out / "notes.txt").write_text("the user's")
    (out / "userdir").mkdir()
    (out / "userdir" / "mine.txt").write_text("the user's too")
    (out / "escape").symlink_to(root / "outside")
    return out


def forged(out: Path, path: str, kind: str) -> dict:
    """A manifest entry for ``path`` whose identity is copied from whatever the path reaches
    when links are followed: what a naive tool would take as proof that it wrote it."""
    entry = {"path": path, "kind": kind}
    try:
        target = out / path
        info = os.stat(target)
        entry.update(ino=info.st_ino, size=info.st_size, mtime_ns=info.st_mtime_ns,
                     target=os.readlink(target) if target.is_symlink() else str(target))
    except (OSError, ValueError):
        pass
    return entry


# Paths that reach outside the output folder, through a link, or the store and the manifest:
# never removed even when the entry copies the exact identity (inode, size, mtime) of what they
# reach. The user's own entries reached directly are listed with an identity that is not theirs
# (copying a file's inode number into the manifest by hand is taken as proof that it is ours).
HOSTILE_PATHS = ["..", ".", "", "/", "../outside", "../outside/keep.txt", "../beside.txt",
                 "escape", "escape/keep.txt", "faces.db", "faces.db-wal", MANIFEST,
                 "userdir/../../beside.txt", "./notes.txt", "userdir/", "userdir//mine.txt",
                 STAGING_PREFIX + "x", "person_001", "person_0001", "unknown", "<absolute>"]
USER_PATHS = ["notes.txt", "userdir", "userdir/mine.txt"]
KINDS = ["file", "dir", "link", "hardlink", "staging", "other"]


def absolute(root: Path, path: str) -> str:
    return str(root / "outside" / "keep.txt") if path == "<absolute>" else path


def manifest_entry(root: Path, out: Path, path: str, kind: str) -> dict:
    path = absolute(root, path)
    if path in USER_PATHS or path not in HOSTILE_PATHS + [absolute(root, "<absolute>")]:
        return {"path": path, "kind": kind, "ino": 1, "size": 0, "mtime_ns": 0, "target": "x"}
    return forged(out, path, kind)


def check_untouched(root: Path, out: Path, before: dict, store_bytes: bytes) -> None:
    after = tree(root)
    for path, value in before.items():
        assert after.get(path) == value, f"{path} was changed or deleted"
    assert (out / "faces.db").read_bytes() == store_bytes


def test_hostile_manifests_never_delete_anything_export_did_not_write(tmp_path, db):
    root = tmp_path / "world"
    root.mkdir()
    out = hostile_world(root, db)
    manifests = [
        json.dumps(["..", str(root), "escape", "userdir", "../outside"]),  # the old format
        "not JSON {",
        json.dumps({"facecluster_export": 2, "entries": "nothing"}),
        json.dumps({"facecluster_export": 2, "entries": [
            manifest_entry(root, out, path, kind) for path in HOSTILE_PATHS + USER_PATHS
            for kind in KINDS]}),
    ]
    before, store_bytes = tree(root), (out / "faces.db").read_bytes()
    for manifest in manifests:
        (out / MANIFEST).write_text(manifest)
        summary = export(out / "faces.db", out, quiet=True)
        check_untouched(root, out, {k: v for k, v in before.items() if not k.startswith("people/.")},
                        store_bytes)
        assert (root / "outside" / "keep.txt").read_text() == "outside the export"
    # an unparseable manifest is reported
    (out / MANIFEST).write_text("not JSON {")
    summary = export(out / "faces.db", out, quiet=True)
    assert any(MANIFEST in w and "cannot be read" in w for w in summary["warnings"])


@settings(max_examples=30, deadline=None)
@given(manifest=st.one_of(
    st.lists(st.tuples(st.sampled_from(HOSTILE_PATHS + USER_PATHS) | st.text(max_size=12),
                       st.sampled_from(KINDS)), max_size=12),
    st.lists(st.sampled_from(HOSTILE_PATHS + USER_PATHS) | st.text(max_size=12), max_size=6)
    .map(lambda names: ("legacy", names)),
    st.text(max_size=40).map(lambda text: ("raw", text))))
@example(manifest=("legacy", [".."]))
@example(manifest=[("..", "dir"), ("escape/keep.txt", "file"), ("<absolute>", "file")])
def test_any_manifest_deletes_nothing_outside_what_export_wrote(template, manifest):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        out = hostile_world(root, template[1])
        export(out / "faces.db", out, quiet=True)  # some of it is ours, the rest is not
        before, store_bytes = tree(root), (out / "faces.db").read_bytes()
        user = {k: v for k, v in before.items() if not k.startswith("people/")
                or k.split("/")[1] in ("notes.txt", "userdir", "escape", "faces.db")}
        if isinstance(manifest, tuple) and manifest[0] == "raw":
            text = manifest[1]
        elif isinstance(manifest, tuple):
            text = json.dumps([absolute(root, p) for p in manifest[1]])
        else:
            entries = [manifest_entry(root, out, p, kind) for p, kind in manifest]
            text = json.dumps({"facecluster_export": 2, "entries": entries})
        (out / MANIFEST).write_text(text)
        export(out / "faces.db", out, quiet=True)
        check_untouched(root, out, user, store_bytes)


# -- the user's files and folders ----------------------------------------------------------------
def test_user_files_inside_person_folders_survive_reexport(tmp_path, db, template):
    out = tmp_path / "people"
    person = first_person(export(db, out, quiet=True))
    first = exported(out)
    (out / person / "my_notes.txt").write_text("mine")
    shutil.copy(template[0] / "obama.jpg", out / person / "photos" / "my_copy.jpg")
    mine = {k: v for k, v in tree(out).items() if "my_" in k}

    assert first_person(export(db, out, quiet=True)) == person  # the same folder, written again
    assert without_report(exported(out)) == without_report({**first, **mine})  # no obama_2.jpg
    assert_manifest_covers(out, ignore=[f"{person}/my_notes.txt", f"{person}/photos/my_copy.jpg"])

    facecluster.cluster(db, "chinese-whispers", threshold=0.01)  # now nobody is a person
    export(db, out, quiet=True)
    left = {k: v for k, v in tree(out).items() if k.startswith(person)}
    assert left == {person: ("dir", None), f"{person}/photos": ("dir", None), **mine}


def test_folders_the_user_made_are_never_adopted(tmp_path, db):
    scratch = tmp_path / "scratch"
    summary = export(db, scratch, quiet=True)
    person, unknown = first_person(summary), summary.get("unknown_folder", "unknown")

    out = tmp_path / "people"
    for folder in (person, unknown):
        (out / folder).mkdir(parents=True)
        (out / folder / "readme.txt").write_text(f"the user's {folder}")
    users = tree(out)
    summary = export(db, out, quiet=True)
    new_person, new_unknown = first_person(summary), summary.get("unknown_folder", "unknown")
    assert new_person not in (person, unknown) and new_unknown not in (person, unknown)
    assert (out / new_person / "montage.jpg").exists() and (out / new_unknown / "montage.jpg").exists()
    assert any(person in w for w in summary["warnings"])
    again = export(db, out, quiet=True)  # stable: the folders made last time are reused
    assert (first_person(again), again["unknown_folder"]) == (new_person, new_unknown)
    assert {k: v for k, v in tree(out).items() if k.split("/")[0] in (person, unknown)} == users

    # a person named "Holiday Photos" next to the user's own Holiday_Photos folder
    run_cli("name", summary["people"][0]["id"], "Holiday Photos", "--db", db)
    named = first_person(export(db, scratch, quiet=True))
    (out / named).mkdir()
    (out / named / "beach.jpg").write_bytes(b"the user's photo")
    users = {k: v for k, v in tree(out).items() if k.split("/")[0] == named}
    written = first_person(export(db, out, quiet=True))
    assert written != named and (out / written / "montage.jpg").exists()
    assert {k: v for k, v in tree(out).items() if k.split("/")[0] == named} == users


def test_symlinks_in_the_output_folder_are_never_followed(tmp_path, db):
    person = first_person(export(db, tmp_path / "scratch", quiet=True))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "file").write_text("not to be overwritten")
    out = tmp_path / "people"
    out.mkdir()
    (out / person).symlink_to(elsewhere)
    (out / "people.json").symlink_to(elsewhere / "file")
    (out / "faces.csv").symlink_to(elsewhere / "file")
    (out / "index.html").symlink_to(elsewhere / "absent.html")  # dangling: must stay so
    links = {k: v for k, v in tree(out).items()}
    outside = tree(elsewhere)

    summary = export(db, out, quiet=True)
    written = first_person(summary)
    assert written != person and (out / written / "faces").is_dir()
    assert json.loads((out / "people_2.json").read_text())["people"][0]["folder"] == written
    assert (out / "faces_2.csv").exists() and (out / "index_2.html").exists()
    assert summary["report"] == str(out / "index_2.html")  # what the command prints
    assert len(summary["warnings"]) >= 4

    # the user now swaps one of our folders for a link to elsewhere: not followed either
    (out / written / "faces").rename(out / written / "faces_old")
    (out / written / "faces").symlink_to(elsewhere)
    export(db, out, quiet=True)
    export(db, out, quiet=True)  # and again: no crash, names stay the same
    assert tree(elsewhere) == outside
    assert {k: v for k, v in tree(out).items() if k in links} == links
    assert os.readlink(out / written / "faces") == str(elsewhere)
    assert not (out / "people_3.json").exists()


# -- failures midway -----------------------------------------------------------------------------


def fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    filler.write_bytes(bytes(max(0, shutil.disk_usage(disk).free - leave)))
    return filler


def export_failure(*args, **kwargs) -> Exception | None:
    """What ``export`` raises, or None."""
    try:
        export(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 (the caller checks it is an ExportError)
        return error
    return None


def check_failed_export(out: Path, previous: dict, error: str, message: str) -> None:
    """A failed export: one sentence, and the previous export as it was (or, if the swap had
    begun, the new one, which has the same paths here), every entry listed in the manifest."""
    assert error == "ExportError", f"not one sentence but {error}: {message}"
    assert "\n" not in message and "run export again" in message
    assert set(exported(out)) == set(previous)
    assert_manifest_covers(out)
    assert_images_whole(out)


def test_full_disk_midway_keeps_the_previous_export_and_the_next_one_is_clean(tmp_path, db,
                                                                              small_disk):
    out = small_disk / "people"
    export(db, out, quiet=True)
    previous = exported(out)
    for leave in (0, 100_000, 1_000_000, 2_500_000):  # copies of the photos need 3.2 MB
        filler = fill(small_disk, leave)
        failed = export_failure(db, out, link="copy", quiet=True)
        check_failed_export(out, previous, type(failed).__name__, str(failed))
        assert str(failed).startswith("disk full while writing")
        assert exported(out) == previous  # not a byte changed
        filler.unlink()
        export(db, out, quiet=True)
        assert exported(out).keys() == previous.keys()  # no obama_2.jpg, no stale files
        assert_manifest_covers(out)


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@settings(max_examples=15, deadline=None)
@given(share=st.floats(0, 1.3), link=st.sampled_from(["symlink", "copy"]))
def test_any_amount_of_free_space_leaves_a_whole_export(template, share, link):
    """With room for ``share`` of a new export, the export completes or fails cleanly."""
    db = template[1]
    with tempfile.TemporaryDirectory() as folder:
        disk = Path(folder)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", folder],
                          capture_output=True, check=False).returncode:
            pytest.skip("cannot mount a tmpfs here")
        try:
            out = disk / "people"
            export(db, out, link=link, quiet=True)
            previous = exported(out)
            filler = fill(disk, int(share * size_of(out)))
            failed = export_failure(db, out, link=link, quiet=True)
            if failed:
                check_failed_export(out, previous, type(failed).__name__, str(failed))
            filler.unlink()
            export(db, out, link=link, quiet=True)
            assert exported(out).keys() == previous.keys()
            assert_manifest_covers(out)
            assert_images_whole(out)
        finally:
            subprocess.run(["umount", "-l", folder], check=False)


def test_file_size_limit_midway_keeps_the_previous_export(tmp_path, db):
    """The same with RLIMIT_FSIZE, which needs no mount: the montage (~40 kB) cannot be written."""
    out = tmp_path / "people"
    export(db, out, quiet=True)
    previous = exported(out)
    code = ("import json, resource, signal\n"
            "from facecluster import export\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
            "try:\n"
            f"    export({str(db)!r}, {str(out)!r}, quiet=True)\n"
            "    print(json.dumps([None, None]))\n"
            "except Exception as error:\n"
            "    print(json.dumps([type(error).__name__, str(error)]))\n")
    with sqlite3.connect(db) as reader:  # holds the store's 32 kB -shm file open, full size
        reader.execute("SELECT COUNT(*) FROM faces").fetchone()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    error, message = json.loads(done.stdout.strip().splitlines()[-1])
    check_failed_export(out, previous, error, message)
    assert message.startswith("file size limit reached while writing")
    assert exported(out) == previous  # the build failed: the previous export is untouched
    export(db, out, quiet=True)
    assert exported(out).keys() == previous.keys()


KILL = {  # os._exit in the middle of an export, at two moments
    "build": "real = e._write_csv\n"
             "def die(*args):\n"
             "    real(*args)\n"
             "    os._exit(9)\n"
             "e._write_csv = die\n",
    "swap": "real, calls = os.rename, []\n"
            "def die(*args, **kwargs):\n"
            "    calls.append(1)\n"
            "    if len(calls) == 2:\n"
            "        os._exit(9)\n"
            "    real(*args, **kwargs)\n"
            "os.rename = die\n",
}


@pytest.mark.parametrize("moment, before", [("build", False), ("build", True), ("swap", True)])
def test_export_killed_midway_is_cleaned_up_by_the_next_one(tmp_path, db, moment, before):
    export(db, tmp_path / "reference", quiet=True)
    reference = exported(tmp_path / "reference")
    out = tmp_path / "people"
    if before:
        export(db, out, quiet=True)
    code = (f"import importlib, os\ne = importlib.import_module('facecluster.export')\n{KILL[moment]}"
            f"e.export({str(db)!r}, {str(out)!r}, quiet=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=False)
    assert done.returncode == 9, done.stderr[-3000:]
    export(db, out, quiet=True)
    assert exported(out).keys() == reference.keys()  # no obama_2.jpg, nothing stale
    assert_manifest_covers(out)


def test_a_second_export_into_the_same_folder_at_once_is_refused(tmp_path, db):
    out = tmp_path / "people"
    export(db, out, quiet=True)
    previous = exported(out)
    folder = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # as an export running in another process holds it
        failed = export_failure(db, out, link="copy", quiet=True)
    finally:
        os.close(folder)
    assert type(failed).__name__ == "ExportError" and "another export" in str(failed)
    assert exported(out) == previous


# -- a rescan running meanwhile ------------------------------------------------------------------
RESCAN = """
import json, sys, time
import numpy as np
from facecluster.store import FaceRecord, Store
store = Store(sys.argv[1])
print("started", flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:  # what a rescan does: each photo saved again, one transaction each
    for media in store.db.execute("SELECT * FROM media WHERE status='ok'").fetchall():
        faces = [FaceRecord(box=(f["left"], f["top"], f["right"], f["bottom"]), score=f["score"],
                            detector=f["detector"], landmarks=json.loads(f["landmarks"]),
                            sharpness=f["sharpness"], chip_jpeg=f["chip"], model=f["model"],
                            embedding=np.frombuffer(f["embedding"], np.float32), time=f["time"])
                 for f in store.db.execute("SELECT * FROM faces WHERE media_id=?", (media["id"],))]
        store.save_media(media["path"], size=media["size"], mtime=media["mtime"], digest=media["hash"],
                         run_id=None, faces=faces, width=media["width"], height=media["height"])
"""


def test_export_during_a_rescan_shows_one_consistent_state(tmp_path, db):
    with facecluster.store.Store(db) as store:
        faces = store.counts()["faces"]
    rescan = subprocess.Popen([sys.executable, "-c", RESCAN, str(db), "8"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert rescan.stdout.readline().strip() == "started"
        for attempt in range(12):
            out = tmp_path / f"people{attempt}"
            export(db, out, quiet=True)
            with open(out / "faces.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            chips = list(out.glob("*/faces/*.jpg"))
            assert len(rows) == len(chips) == faces  # every face once, with its chip
            time.sleep(0.05)
    finally:
        rescan.kill()
        rescan.wait()


# -- names that are not UTF-8 --------------------------------------------------------------------
@pytest.mark.parametrize("link", ["symlink", "copy"])
def test_names_that_are_not_utf8_are_exported_losslessly(tmp_path, db, template, link):
    name = b"caf\xe9 \xff.jpg"
    album = tmp_path / "album"
    album.mkdir()
    photo = os.path.join(os.fsencode(album), name)
    try:
        shutil.copy(template[0] / "biden.jpg", photo)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    with facecluster.store.Store(db) as store:  # the store holds such a name as its bytes
        store.db.execute("UPDATE media SET path=? WHERE path LIKE '%biden.jpg'", (photo,))
    out = tmp_path / "people"
    summary = export(db, out, link=link, quiet=True)

    linked = [p for p in os.listdir(os.fsencode(out / summary["unknown_folder"] / "photos"))]
    assert linked == [name]
    copy = os.path.join(os.fsencode(out / summary["unknown_folder"] / "photos"), name)
    assert Path(os.fsdecode(copy)).read_bytes() == (template[0] / "biden.jpg").read_bytes()
    assert photo in (out / "faces.csv").read_bytes()  # the very bytes of the name
    assert json.loads((out / "people.json").read_text())["unknown_faces"] == 1
    assert (out / "index.html").exists()
    export(db, out, link=link, quiet=True)  # the manifest holds the name too: re-export is clean
    assert os.listdir(os.fsencode(out / summary["unknown_folder"] / "photos")) == [name]


def test_a_copied_export_folder_is_still_ours(tmp_path, db):
    """cp -a (or rsync -a, or a restored backup) keeps names, sizes and times but not inodes:
    the copy's next export replaces its folders cleanly, with no warnings and no *_2 twins."""
    out = tmp_path / "people"
    export(db, out, quiet=True)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    before = sorted(p.name for p in copy.iterdir())
    summary = export(db, copy, quiet=True)
    assert not summary["warnings"]
    assert sorted(p.name for p in copy.iterdir()) == before
