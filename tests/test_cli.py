"""The command line: a bad argument ends in one sentence and never a traceback, every command
has -q and --json, counts read "1 face", empty folders and odd file names are handled, progress
bars finish.

Commands and their options are discovered from the ``facecluster`` group, so a new command or
option is covered without touching this file.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from facecluster.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(main.commands)
BAD_VALUES = {  # besides "abc", values each option must refuse
    "--workers": ["0", "-2"],
    "--jitter": ["-3"],
    "--threshold": ["-1", "0"],
    "--eps": ["0", "-0.5"],
    "--min-samples": ["0"],
    "--detect-mp": ["0", "-1", "1e9"],
    "--min-face": ["-1"],
    "--fps": ["0", "-2"],
    "--time-weight": ["-0.1", "1", "1.5"],
    "--min-people": ["-1"],
    "--max-people": ["-1"],
    "--top": ["0"],
    "--face": ["0"],
    "--face-a": ["0"],
    "--face-b": ["0"],
    "--limit": ["0"],
    "--thumb": ["0"],
    "--neighbours": ["0"],
    "--seed": ["-1"],
}
STORE_WRITERS = {"run", "scan", "evaluate"}  # a --db that does not exist yet is created


def _numeric_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag
            and isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))]


def _long_name(option: click.Option) -> str:
    return max(option.opts, key=len)


def _placeholders(command: click.Command, tmp: Path, skip: str = "") -> list[str]:
    """Values for the command's required arguments and options: a file, a folder or a number."""
    photo, folder = tmp / "photo.jpg", tmp / "folder"
    photo.write_bytes(b"not really a photo")
    folder.mkdir(exist_ok=True)
    args = []
    for param in command.params:
        if not param.required or skip in param.opts:
            continue
        if isinstance(param.type, click.types.IntParamType):
            value = "1"
        elif isinstance(param.type, click.Path) and not param.type.file_okay:
            value = str(folder if isinstance(param, click.Argument) else tmp / "out")
        elif isinstance(param.type, click.Path) or param.name == "photos":
            value = str(photo)
        else:
            value = "x"
        args += [value] if isinstance(param, click.Argument) else [_long_name(param), value]
    return args


def _assert_one_line_error(result, *words: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    for word in words:
        assert word in last, result.output


def _not_finite(option: click.Option) -> list[str]:
    """nan and inf pass a plain float range (they compare as inside it): floats must refuse them."""
    return ["nan", "inf"] if isinstance(option.type, click.types.FloatParamType) else []


BAD_CASES = [(name, _long_name(option), value)
             for name in COMMANDS for option in _numeric_options(main.commands[name])
             for value in ["abc", *BAD_VALUES.get(_long_name(option), []), *_not_finite(option)]]


@pytest.mark.parametrize("command, option, value", BAD_CASES)
def test_bad_numeric_value_gives_one_line_and_no_traceback(command, option, value, tmp_path):
    # The bad option comes first: Click checks options in the order they are given.
    args = [command, f"{option}={value}", *_placeholders(main.commands[command], tmp_path, option)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    _assert_one_line_error(result, option)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_numeric_option_has_a_range(command):
    unbounded = [_long_name(o) for o in _numeric_options(main.commands[command])
                 if not isinstance(o.type, (click.IntRange, click.FloatRange))]
    assert not unbounded, f"{command}: {unbounded} take any number"


@pytest.mark.parametrize("command", sorted(name for name in COMMANDS
                                           if "--db" in {o for p in main.commands[name].params
                                                         for o in p.opts}
                                           and name not in STORE_WRITERS))
def test_store_that_does_not_exist_gives_one_line(command, tmp_path):
    args = [command, "--db", str(tmp_path / "missing.db"),
            *_placeholders(main.commands[command], tmp_path, "--db")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    _assert_one_line_error(result, "missing.db")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_quiet_and_json_with_help(command):
    options = {o: p for p in main.commands[command].params for o in p.opts}
    assert {"-q", "--quiet", "--json"} <= set(options), f"{command} lacks -q or --json"
    assert options["--quiet"].help == "No progress bars or summary."
    assert options["--json"].help == "Print the result as JSON on stdout."


def test_plural():
    from facecluster.cli.common import plural

    assert [plural(1, "face"), plural(0, "face"), plural(2, "photo")] == ["1 face", "0 faces", "2 photos"]
    assert [plural(1, "person"), plural(4, "person")] == ["1 person", "4 people"]


def test_one_photo_with_one_face_is_counted_in_the_singular(sample_folder, tmp_path):
    runner, db = CliRunner(), str(tmp_path / "faces.db")
    scanned = runner.invoke(main, ["scan", str(sample_folder / "obama.jpg"), "--db", db,
                                   "--workers", "1"], catch_exceptions=False)
    assert scanned.exit_code == 0, scanned.output
    assert "\n1 photo: 1 read" in "\n" + scanned.output and "; 1 new face in" in scanned.output
    clustered = runner.invoke(main, ["cluster", "--db", db], catch_exceptions=False)
    assert "among 1 face (graph)" in clustered.output
    assert not any(f" 1 {word}" in clustered.output + scanned.output
                   for word in ("people", "faces", "photos"))


def test_photos_without_a_face_are_counted(sample_folder, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(sample_folder / "obama.jpg", folder)
    Image.new("RGB", (400, 300), (90, 120, 150)).save(folder / "sky.jpg")
    scanned = CliRunner().invoke(main, ["run", str(folder), "-o", str(tmp_path / "out"),
                                        "--workers", "1"], catch_exceptions=False)
    assert "2 photos: 2 read" in scanned.output and "1 new face (1 photo without one) in" in scanned.output
    listed = json.loads((tmp_path / "out" / "people.json").read_text())["without_face"]
    assert [Path(p).name for p in listed] == ["sky.jpg"]
    report = (tmp_path / "out" / "index.html").read_text()
    assert "No face found (1)" in report and "sky.jpg" in report


@pytest.mark.parametrize("command", ["scan", "run"])
def test_empty_folder_says_no_photos_found(command, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no photos here")
    args = {"scan": ["scan", str(empty), "--db", str(tmp_path / "faces.db")],
            "run": ["run", str(empty), "-o", str(tmp_path / "out")]}[command]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no photos found in {empty}"
    assert not (tmp_path / "faces.db").exists() and not (tmp_path / "out").exists()


def test_file_names_that_are_not_utf8_are_printed_escaped(tmp_path, monkeypatch):
    from facecluster import api
    from facecluster.scan import ScanReport

    name = str(tmp_path / "caf\udce9.jpg")  # b"caf\xe9.jpg" as Python sees it
    (tmp_path / "ok.jpg").write_bytes(b"x")
    report = ScanReport(photos=2, scanned=2, errors=[(name, f"cannot read {name}")])
    monkeypatch.setattr(api, "scan", lambda *args, **kwargs: report)
    result = CliRunner().invoke(main, ["scan", str(tmp_path), "--db", str(tmp_path / "f.db")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 file could not be read:" in result.output
    assert f"caf\\udce9.jpg: cannot read {tmp_path}/caf\\udce9.jpg" in result.output


def test_emit_never_fails_on_a_strict_utf8_stdout(monkeypatch):
    from facecluster.cli.common import emit

    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", errors="strict"))
    emit(False, False, {}, "caf\udce9.jpg")
    emit(True, False, {"path": "caf\udce9.jpg"}, "")
    sys.stdout.flush()
    assert b"caf\\udce9.jpg" in raw.getvalue()


# -- errors at the top level ------------------------------------------------------------------
def _cluster_raising(monkeypatch, tmp_path, error: BaseException):
    from facecluster import api

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(api, "cluster", fail)
    (tmp_path / "faces.db").write_bytes(b"")
    return CliRunner().invoke(main, ["cluster", "--db", str(tmp_path / "faces.db")],
                              catch_exceptions=False)


def test_ctrl_c_says_what_is_kept(monkeypatch, tmp_path):
    result = _cluster_raising(monkeypatch, tmp_path, KeyboardInterrupt())
    assert result.exit_code == 130
    assert result.output.strip() == "Error: stopped; everything finished so far is kept"


def test_full_disk_is_one_sentence(monkeypatch, tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", "/photos/out/faces.db")
    result = _cluster_raising(monkeypatch, tmp_path, full)
    _assert_one_line_error(result, "disk full", "/photos/out/faces.db")


@pytest.mark.parametrize("module, name", [("facecluster.store", "StoreError"),
                                          ("facecluster.export", "ExportError")])
def test_store_and_export_errors_are_one_sentence(monkeypatch, tmp_path, module, name):
    error = type(name, (Exception,), {})  # the group looks the library's class up when needed
    monkeypatch.setattr(f"{module}.{name}", error, raising=False)
    result = _cluster_raising(monkeypatch, tmp_path, error("faces.db is damaged; move it away"))
    _assert_one_line_error(result, "faces.db is damaged; move it away")


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    with pytest.raises(ZeroDivisionError):
        _cluster_raising(monkeypatch, tmp_path, ZeroDivisionError("a bug"))


def _facecluster(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecluster.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120, check=False)


def test_dbscan_eps_zero_is_refused_without_a_traceback(tmp_path):
    (tmp_path / "faces.db").write_bytes(b"")
    result = _facecluster("cluster", "--db", tmp_path / "faces.db", "--algorithm", "dbscan",
                          "--eps", "0", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for '--eps'")


def test_a_file_that_is_not_a_store_gives_one_sentence(tmp_path):
    """Needs facecluster.store.StoreError (a damaged or foreign store file)."""
    (tmp_path / "faces.db").write_text("these are my holiday notes, not a database\n" * 100)
    result = _facecluster("cluster", "--db", tmp_path / "faces.db", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "faces.db" in result.stderr
    assert result.stdout == ""


# -- progress bars and the gallery store ------------------------------------------------------
def test_progress_bar_ends_at_100_percent(capsys):
    from facecluster.progress import progress_bar

    with progress_bar("Video clip.mp4", 10.0) as advance:
        for _ in range(19):  # samples at 0, 0.5, ..., 9.5 s: the last comes before the end
            advance(0.5)
    assert "10/10" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt), progress_bar("Video clip.mp4", 10.0) as advance:
        advance(4.5)
        raise KeyboardInterrupt
    assert "4/10" in capsys.readouterr().err  # a stopped bar says where it stopped


def test_video_progress_bar_ends_at_the_end_of_the_video(tmp_path, capsys):
    av = pytest.importorskip("av")
    import numpy as np

    from facecluster.video import VideoOptions
    from facecluster.video.scan_video import scan_media

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:  # 5 s of grey frames at 10 frames a second
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(50):
            frame = np.full((48, 64, 3), 4 * n, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    scan_media(clip, tmp_path / "faces.db", video=VideoOptions(fps=2), workers=1)
    assert "5/5" in capsys.readouterr().err  # the last sample is at 4.5 s


def test_gallery_store_is_not_written_into_the_gallery(tmp_path, monkeypatch):
    from facecluster.explore.similar import gallery_db

    monkeypatch.setenv("FACECLUSTER_CACHE", str(tmp_path / "cache"))
    gallery = tmp_path / "photos" / "celebrities"
    gallery.mkdir(parents=True)
    db = gallery_db(gallery)
    assert db.parent == tmp_path / "cache" / "galleries" and db.name.startswith("celebrities-")
    assert gallery_db(tmp_path / "other" / "celebrities") != db
    assert gallery_db(str(gallery) + "/") == db
