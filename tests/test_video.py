"""Videos, webcams and streams: tracks, people, timelines, capture control.

The synthetic video is made here from the real sample photos: Obama on screen 0-3 s (left),
Biden 2-5 s (right), on a plain background, 10 frames a second, faces drifting slowly.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facecluster import api
from facecluster.cli import main
from facecluster.detect import get_detector
from facecluster.scan import ScanOptions
from facecluster.store import Store
from facecluster.video import VideoOptions, cluster_media, parse_duration, parse_source, scan_media
from facecluster.video import sources
from facecluster.video.appearance import describe
from facecluster.video.sources import Frame, SourceError, sample_frames
from facecluster.video.tracking import Tracker

from conftest import DATASETS

SIZE = (640, 360)
RATE = 10
LENGTH = 5.0
OBAMA, BIDEN = (0.0, 3.0), (2.0, 5.0)  # seconds on screen
PERIOD = 0.5  # sampling period at --fps 2


# -- the synthetic video ------------------------------------------------------------------------
def _face_crop(path: Path, width: int = 150) -> np.ndarray:
    """The photo's face with some margin, ``width`` pixels wide (RGB)."""
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rect = max(get_detector("hog")._model(rgb, 1), key=lambda r: r.width())
    pad = int(rect.width() * 0.5)
    crop = rgb[max(0, rect.top() - pad): rect.bottom() + pad, max(0, rect.left() - pad): rect.right() + pad]
    return cv2.resize(crop, (width, round(crop.shape[0] * width / crop.shape[1])))


def _compose(t: float, obama: np.ndarray, biden: np.ndarray) -> np.ndarray:
    frame = np.full((SIZE[1], SIZE[0], 3), 200, np.uint8)
    drift = int(8 * t)
    for crop, (start, end), x in ((obama, OBAMA, 60 + drift), (biden, BIDEN, 400 - drift)):
        if start <= t < end:
            h = min(crop.shape[0], SIZE[1] - 40)
            frame[40:40 + h, x:x + crop.shape[1]] = crop[:h]
    return frame


def write_video(path: Path, frames, rate: int = RATE) -> Path:
    """Frames (RGB) to an H.264 MP4 with its index first, so it streams over plain HTTP."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory, sample_folder) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    obama, biden = _face_crop(sample_folder / "obama.jpg"), _face_crop(sample_folder / "biden.jpg")
    times = np.arange(int(LENGTH * RATE)) / RATE
    write_video(folder / "two_people.mp4", (_compose(t, obama, biden) for t in times))
    return folder


@pytest.fixture(scope="module")
def synthetic_video(video_folder) -> Path:
    return video_folder / "two_people.mp4"


@pytest.fixture(scope="module")
def cast(tmp_path_factory, synthetic_video) -> Path:
    """The CLI run of the synthetic video, with an annotated copy."""
    out = tmp_path_factory.mktemp("cast")
    result = CliRunner().invoke(main, ["run", str(synthetic_video), "-o", str(out), "--fps", "2",
                                       "--workers", "1", "--annotate", str(out / "annotated.mp4"), "-q"])
    assert result.exit_code == 0, result.output
    return out


def _timeline(out: Path) -> dict[str, list[tuple[float, float]]]:
    with open(out / "timeline.csv") as f:
        rows = list(csv.DictReader(f))
    spans: dict = {}
    for row in rows:
        spans.setdefault(row["person"], []).append((float(row["start"]), float(row["end"])))
    return spans


def _by_start(spans: dict) -> list[tuple[float, float]]:
    return sorted((min(s for s, _ in v), max(e for _, e in v)) for v in spans.values())


# -- units -----------------------------------------------------------------------------------------
def test_parse_duration():
    assert parse_duration("90") == parse_duration("90s") == parse_duration(90) == 90
    assert parse_duration("10m") == 600 and parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400 and parse_duration(None) is None
    for bad in ("ten", "10x", "", "0", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_parse_source(synthetic_video, tmp_path):
    assert parse_source("webcam:1").kind == "webcam"
    assert parse_source("rtsp://127.0.0.1:8554/cam").kind == "stream"
    assert parse_source(synthetic_video).kind == "video"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="not a video"):
        parse_source(tmp_path / "notes.txt")
    with pytest.raises(SourceError, match="no such"):
        parse_source(tmp_path / "gone.mp4")


def test_sampling_follows_timestamps_with_variable_frame_rate():
    # 30 fps for one second, then 5 fps, then a burst: samples still 0.5 s apart
    times = list(np.arange(0, 1, 1 / 30)) + list(np.arange(1, 3, 1 / 5)) + list(np.arange(3, 4, 1 / 60))
    frames = (Frame(float(t), lambda: None) for t in times)
    kept = [f.time for f in sample_frames(frames, fps=2)]
    grid = np.arange(0, 4, 0.5)
    assert len(kept) == len(grid)  # one sample per half second, however many frames it has
    assert all(-1e-6 <= k - g < 0.2 + 1e-6 for k, g in zip(kept, grid))  # the first frame at or after
    limited = [f.time for f in sample_frames((Frame(float(t), lambda: None) for t in times), 2, duration=2)]
    assert max(limited) < 2


def test_tracker_links_by_box_and_embedding_and_keeps_people_apart():
    a, b = np.eye(128)[0], np.eye(128)[1]
    tracker = Tracker(max_gap=1.0)
    for step in range(4):
        t = step * 0.5
        boxes = [(10 + step, 10, 60 + step, 60), (200 - step, 10, 250 - step, 60)]
        tracker.update(t, boxes, [a, b], [2 * step, 2 * step + 1])
    tracker.update(4.0, [(10, 10, 60, 60)], [a], [8])  # after a 2 s gap: a new track
    assert [t.faces for t in tracker.tracks] == [[0, 2, 4, 6], [1, 3, 5, 7], [8]]
    tracker.update(4.5, [(10, 10, 60, 60)], [b], [9])  # same place, another face: not linked
    assert len(tracker.tracks) == 4


def test_appearance_descriptor_tells_clothes_apart():
    frame = np.full((360, 640, 3), 30, np.uint8)
    frame[150:, :320] = (200, 30, 30)  # red shirt on the left
    frame[150:, 320:] = (30, 30, 200)  # blue shirt on the right
    face_left, face_right = (130, 80, 190, 140), (450, 80, 510, 140)
    red, blue, red_again = describe(frame, face_left), describe(frame, face_right), describe(frame, face_left)
    assert np.isclose(np.linalg.norm(red), 1) and np.allclose(red, red_again)
    assert np.linalg.norm(red - blue) > 0.5
    assert describe(frame, (130, 330, 190, 360)) is None  # face at the bottom edge: no torso


# -- a whole run -------------------------------------------------------------------------------
def test_run_finds_two_people_with_their_times(cast):
    with Store(cast / "faces.db") as store:
        tracks = store.db.execute("SELECT id, start, end FROM tracks").fetchall()
        faces = store.faces()
        media = store.db.execute("SELECT kind, duration FROM media").fetchall()
    assert [m["kind"] for m in media] == ["video"] and abs(media[0]["duration"] - LENGTH) < 0.2
    assert len(tracks) == 2
    assert all(f["track_id"] is not None for f in faces) and len(faces) == 12  # 6 samples each
    spans = _timeline(cast)
    assert len(spans) == 2 and "unknown" not in spans
    for (start, end), (true_start, true_end) in zip(_by_start(spans), (OBAMA, BIDEN)):
        assert abs(start - true_start) <= PERIOD and abs(end - true_end) <= PERIOD
    people = json.loads((cast / "people.json").read_text())["people"]
    assert len(people) == 2
    assert all(abs(p["screen_seconds"] - 3.0) <= PERIOD for p in people)


def test_run_writes_timeline_chart_report_and_best_chips(cast):
    assert (cast / "timeline.png").stat().st_size > 1000
    page = (cast / "index.html").read_text()
    assert "timeline.png" in page and "s on screen" in page
    for person in (p["folder"] for p in json.loads((cast / "people.json").read_text())["people"]):
        assert len(list((cast / person / "best").glob("*.jpg"))) == 6
        assert (cast / person / "montage.jpg").exists()
        assert [p.name for p in (cast / person / "photos").iterdir()] == ["two_people.mp4"]


def test_annotated_video_has_every_frame_and_boxes(cast):
    with av.open(str(cast / "annotated.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == LENGTH * RATE
    blank = np.full_like(frames[0], 200)
    # at 4 s Biden is boxed (coloured pixels on the grey background beside his face)
    coloured = np.abs(frames[40].astype(int) - blank).sum(axis=2) > 150
    assert coloured[:, 300:].any()


def test_folder_with_photos_and_videos(video_folder, sample_folder, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    os.symlink(video_folder / "two_people.mp4", folder / "clip.mp4")
    (folder / "biden.jpg").write_bytes((sample_folder / "biden.jpg").read_bytes())
    out = tmp_path / "out"
    scanned, clustered, _ = api.run(folder, out, workers=2, quiet=True, video=VideoOptions(fps=2))
    assert scanned.photos == 1 and scanned.videos == 1 and scanned.tracks == 2
    assert clustered.people == 2 and clustered.unknown == 0  # the photo of Biden joins his track
    again, _, _ = api.run(folder, out, workers=1, quiet=True, video=VideoOptions(fps=2))
    assert again.unchanged == 2 and again.videos == 0
    with Store(out / "faces.db") as store:
        assert {r["status"] for r in store.db.execute("SELECT status FROM media")} == {"ok"}


def test_clothing_time_weight_and_min_people(synthetic_video, tmp_path):
    db = tmp_path / "faces.db"
    only_pairs = scan_media(synthetic_video, db, video=VideoOptions(fps=2, min_people=2), workers=1, quiet=True)
    assert only_pairs.faces == 4  # the two samples (2.0 s, 2.5 s) with both on screen
    scan_media(synthetic_video, db, video=VideoOptions(fps=2), workers=1, quiet=True)  # options changed
    fused = cluster_media(db, video=VideoOptions(with_clothing=True, time_weight=0.2))
    assert fused.people == 2 and fused.params["clothing_weight"] == 0.3
    with pytest.raises(ValueError):
        VideoOptions(with_clothing=True, clothing_weight=0.6, time_weight=0.5)


# -- streams and webcams -------------------------------------------------------------------------
@pytest.fixture()
def http_server(video_folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video_folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_stream(http_server, tmp_path):
    out = tmp_path / "stream"
    scanned, clustered, _ = api.run(f"{http_server}/two_people.mp4", out, workers=1, quiet=True,
                                    video=VideoOptions(fps=2))
    assert not scanned.errors and scanned.tracks == 2 and clustered.people == 2
    with Store(out / "faces.db") as store:
        (media,) = store.db.execute("SELECT kind, path FROM media").fetchall()
    assert media["kind"] == "stream" and media["path"].startswith(http_server)
    assert len(_timeline(out)) == 2


class _FileWebcam(sources.Capture):
    """A 'webcam' playing the synthetic video; can fail or be interrupted after some frames."""

    opened = 0

    def __init__(self, path: Path, stop_after: int | None = None, raise_=KeyboardInterrupt):
        self.inner = sources.AvCapture(str(path))
        self.size, self.stop_after, self.raise_ = self.inner.size, stop_after, raise_
        type(self).opened += 1

    def __iter__(self):
        for index, frame in enumerate(self.inner):
            if self.stop_after is not None and index == self.stop_after:
                raise self.raise_("webcam unplugged" if self.raise_ is SourceError else None)
            yield frame

    def close(self):
        self.inner.close()


def test_webcam_ctrl_c_keeps_what_was_seen(synthetic_video, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "open_webcam", lambda index: _FileWebcam(synthetic_video, stop_after=28))
    result = CliRunner().invoke(main, ["run", "webcam:0", "-o", str(tmp_path / "room"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "stopped by Ctrl-C" in result.output
    spans = _timeline(tmp_path / "room")  # 2.8 s seen: Obama 0-2.8, Biden 2.0-2.8
    assert len(spans) == 2
    assert max(e for v in spans.values() for _, e in v) <= 2.8 + PERIOD


def test_dropped_stream_reconnects_and_carries_on(synthetic_video, tmp_path, monkeypatch):
    captures = iter([_FileWebcam(synthetic_video, stop_after=20, raise_=SourceError),
                     _FileWebcam(synthetic_video)])
    monkeypatch.setattr(sources, "open_webcam", lambda index: next(captures))
    monkeypatch.setattr(sources, "BACKOFF", 0.01)
    messages = []
    frames = list(sources.frames_with_retries(parse_source("webcam:0"), log=messages.append))
    times = [f.time for f in frames]
    assert len(frames) == 20 + 50 and len(messages) == 1 and "reconnecting" in messages[0]
    assert all(b > a for a, b in zip(times, times[1:]))  # the clock carries on after the drop


def test_stream_that_stays_down_is_reported_and_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BACKOFF", 0.01)
    monkeypatch.setattr(sources, "READ_TIMEOUT", 2.0)
    result = CliRunner().invoke(main, ["run", "http://127.0.0.1:9/cam.mp4", "-o", str(tmp_path / "cam"),
                                       "--workers", "1", "--duration", "10s"])
    assert result.exit_code == 0, result.output
    assert "gave up after 3 reconnections" in result.output
    assert (tmp_path / "cam" / "index.html").exists()


def test_cli_rejects_bad_sources_and_options(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["run", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    bad = runner.invoke(main, ["run", "webcam:0", "-o", str(tmp_path / "o"), "--duration", "soon"])
    assert bad.exit_code == 2 and "cannot read duration" in bad.output


# -- the development clips (skip when ../shared is absent) -----------------------------------------
def _clip(name: str) -> Path:
    path = DATASETS / "videos" / name
    if not path.is_file():
        pytest.skip(f"development clip {name} not available at {path}")
    return path


def _reference(person: str) -> np.ndarray:
    from facecluster.embed import get_embedder
    from facecluster.scan import find_faces

    folder = DATASETS / "ageitgey_examples" / person
    photo = next(p for p in sorted(folder.iterdir()) if "partial" not in p.name and "32bit" not in p.name)
    options = ScanOptions()
    faces, _ = find_faces(photo, get_detector("hog"), get_embedder(), options)
    return max(faces, key=lambda f: f.box[2] - f.box[0]).embedding


def _people_of_clip(out: Path) -> dict[str, dict]:
    """Person folder -> {'spans': merged intervals, 'embedding': mean embedding}."""
    from facecluster.video.timeline import merged_intervals

    with open(out / "timeline.csv") as f:
        rows = [{**r, "start": float(r["start"]), "end": float(r["end"])} for r in csv.DictReader(f)]
    with Store(out / "faces.db") as store:
        ids, _, X = store.embeddings()
        people = {p["id"]: p["folder"] for p in json.loads((out / "people.json").read_text())["people"]}
        person_of = {f: people.get(p) for f, (p, _) in store.assignments().items()}
    result = {}
    for (person, _), spans in merged_intervals(rows).items():
        members = [i for i, f in enumerate(ids) if person_of.get(int(f)) == person]
        result[person] = {"spans": spans, "embedding": X[members].mean(axis=0)}
    return result


def _who(people: dict, reference: np.ndarray) -> str:
    return min(people, key=lambda p: np.linalg.norm(people[p]["embedding"] - reference))


def test_hamilton_clip_lin_manuel_miranda_is_one_person(tmp_path):
    clip = _clip("short_hamilton_clip.mp4")
    api.run(clip, tmp_path, workers=1, quiet=True, video=VideoOptions(fps=2))
    people = _people_of_clip(tmp_path)
    miranda = _who(people, _reference("lin_manuel_miranda"))
    assert np.linalg.norm(people[miranda]["embedding"] - _reference("lin_manuel_miranda")) < 0.6
    spans = people[miranda]["spans"]
    assert len(spans) == 2
    assert spans[0][0] <= PERIOD and abs(spans[0][1] - 0.5) <= PERIOD
    assert abs(spans[1][0] - 3.0) <= PERIOD and abs(spans[1][1] - 7.3) <= PERIOD


def test_oval_office_clip_four_seated_men(tmp_path):
    clip = _clip("oval_office_clip.mp4")
    _, clustered, _ = api.run(clip, tmp_path, workers=1, quiet=True, video=VideoOptions(fps=2))
    people = _people_of_clip(tmp_path)
    assert clustered.people == 4 and len([p for p in people if p != "unknown"]) == 4
    ends = sorted(max(e for _, e in v["spans"]) for p, v in people.items() if p != "unknown")
    assert ends[-1] >= 16.5  # the guest of honour is on screen throughout


def test_hamilton_clip_with_cnn_detector_finds_obama(tmp_path):
    clip = _clip("short_hamilton_clip.mp4")
    api.run(clip, tmp_path, options=ScanOptions(detector="cnn"), quiet=True, video=VideoOptions(fps=2))
    people = _people_of_clip(tmp_path)
    miranda, obama = _who(people, _reference("lin_manuel_miranda")), _who(people, _reference("obama"))
    assert miranda != obama  # (Obama's low-resolution, turned track is 0.64 from his photo: the
    # nearest person to it, not within 0.6)
    start, end = people[obama]["spans"][0][0], people[obama]["spans"][-1][1]
    assert abs(start - 7.5) <= 2 * PERIOD and abs(end - 9.0) <= 2 * PERIOD
    assert people[miranda]["spans"][0][0] <= PERIOD


def test_oval_office_clip_with_cnn_detector_timeline(tmp_path):
    clip = _clip("oval_office_clip.mp4")
    _, clustered, _ = api.run(clip, tmp_path, options=ScanOptions(detector="cnn"), quiet=True,
                              video=VideoOptions(fps=2))
    people = _people_of_clip(tmp_path)
    named = {p: v for p, v in people.items() if p != "unknown"}
    ends = sorted(v["spans"][-1][1] for v in named.values())
    assert len(named) == 4
    assert ends[-1] >= 16 and ends[-2] >= 16 and 6 <= ends[0] <= 8.5 and 8.5 <= ends[1] <= 11.5
