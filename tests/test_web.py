"""The review web app over HTTP: a real uvicorn server on 127.0.0.1, real SQLite stores.

Pages load; every correction made by POST changes the store; a POST without the session token,
from another origin, or with a foreign Host header changes nothing; chips and photos are served
only by id (path traversal gets 404). Also: the `facecluster review` command, and the static
report's layout promises.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from facecluster import api
from facecluster.scan import encode_jpeg
from facecluster.store import FaceRecord, Store
from facecluster.store import people as P
from facecluster.web import ReviewServer
from facecluster.web.app import Settings
from facecluster.web.unknown import group_faces

ROOT = Path(__file__).resolve().parents[1]
CHIP = encode_jpeg(np.full((150, 150, 3), 140, np.uint8))


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_run(sample_folder, tmp_path_factory) -> Path:
    """The output folder of `facecluster run` on the sample photos (Obama x6, Biden)."""
    output = tmp_path_factory.mktemp("web") / "people"
    api.run(sample_folder, output, workers=1, quiet=True)
    return output


@pytest.fixture
def people_folder(sample_run, tmp_path) -> Path:
    """A copy of the sample run that a test may change."""
    return Path(shutil.copytree(sample_run, tmp_path / "people", symlinks=True))


class Client:
    """An HTTP client for a running review server, with its session token."""

    def __init__(self, server: ReviewServer):
        self.server = server
        self.token = server.settings.token
        self.http = httpx.Client(base_url=server.url.rstrip("/"), timeout=60)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, action: str, data: dict | None = None, token: str | None = "ok", **headers) -> httpx.Response:
        if token == "ok":
            token = self.token
        if token is not None:
            headers["X-Token"] = token
        return self.http.post(f"/api/{action}", json=data or {}, headers=headers)

    def raw(self, path: str, host: str | None = None) -> tuple[int, bytes]:
        """GET exactly this path (no client-side normalisation of ``..`` or ``%2F``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{self.server.port}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body


@pytest.fixture
def client(people_folder):
    with ReviewServer(people_folder / "faces.db", people_folder) as server:
        yield Client(server)


def dump(db) -> list:
    with Store(db) as store:
        return [store.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("people", "assignments", "confirmed", "rejected", "not_person", "corrections")]


def synthetic_store(path: Path, sizes: list[int], unknown: int = 0, seed: int = 0) -> Path:
    """A store without photos: people of these sizes (ids 1, 2, ...) and some unknown faces."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes) + unknown, 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    faces, owners = [], []
    with Store(path) as store, store.transaction():
        people = [store.new_person(None) for _ in sizes]
        for index, count in enumerate(list(sizes) + [1] * unknown):
            for _ in range(count):
                vector = centres[index] + rng.normal(scale=0.02, size=128)
                record = FaceRecord(box=(10, 10, 60, 60), score=1, detector="hog", landmarks=[],
                                    sharpness=1, chip_jpeg=CHIP, model="dlib_resnet_v1", embedding=vector)
                store.save_media(f"/synthetic/{len(faces):06d}.jpg", size=1, mtime=1, digest=None,
                                 run_id=None, faces=[record], width=100, height=100)
                faces.append(record.id)
                owners.append(people[index] if index < len(sizes) else None)
        store.db.executemany("INSERT INTO assignments (face_id, person_id, confidence) VALUES (?, ?, 0.9)",
                             list(zip(faces, owners)))
    return path


# -- pages -------------------------------------------------------------------------------------------

def test_pages_load(client):
    with Store(client.server.settings.db) as store:
        person = P.list_people(store)[0]
        face = P.person_faces(store, person.id)[0]
        unknown = P.person_faces(store, None)
        media = P.face_photo(store, face)["media"]
    people = client.get("/")
    assert people.status_code == 200 and f"person_{person.id:04d}" in people.text
    assert client.token in people.text  # embedded for the page's POSTs
    page = client.get(f"/person/{person.id}")
    assert page.status_code == 200 and f'data-face="{face}"' in page.text
    assert page.text.count('class="chip"') == person.faces
    for path in ["/unknown", "/rejected", "/queue", "/people/more?offset=0", "/?q=person",
                 f"/person/{person.id}/faces?offset=0"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    if unknown:
        assert f'data-face="{unknown[0]}"' in client.get("/unknown").text
    chip = client.get(f"/chip/{face}")
    assert chip.status_code == 200 and chip.content[:2] == b"\xff\xd8"
    assert client.get(f"/chip/{face}", headers={"If-None-Match": chip.headers["etag"]}).status_code == 304
    photo = client.get(f"/photo/{media}")
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
    info = client.get(f"/api/face/{face}").json()
    assert info["media"] == media and info["image"] == f"/photo/{media}"
    assert any(f["id"] == face and f["person"] == person.id for f in info["faces"])
    suggestions = client.get("/api/people", params={"q": f"person_{person.id:04d}"}).json()
    assert suggestions[0]["id"] == person.id and suggestions[0]["faces"] == person.faces
    assert client.get("/api/queue/count").status_code == 200
    assert client.get("/person/424242").status_code == 404


def test_security_headers(client):
    response = client.get("/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


# -- security ----------------------------------------------------------------------------------------

CHANGES = ["name", "merge", "move", "split", "reject", "unreject", "undo", "answer", "export"]


def test_post_without_the_session_token_is_refused(client):
    db = client.server.settings.db
    with Store(db) as store:
        person = P.list_people(store)[0].id
        face = P.person_faces(store, person)[0]
    before, report = dump(db), (client.server.settings.output / "index.html").stat().st_mtime_ns
    data = {"person": person, "name": "Mallory", "faces": [face], "other": person, "to": person}
    for action in CHANGES:
        for token in (None, "", "wrong", client.token[:-1]):
            response = client.post(action, data, token=token)
            assert response.status_code == 403, (action, token)
            assert "reload the page" in response.json()["error"]
        response = client.post(action, data, Origin="http://evil.example.com")  # right token, other site
        assert response.status_code == 403, action
    assert client.http.put("/api/name", json=data).status_code == 403
    assert dump(db) == before
    assert (client.server.settings.output / "index.html").stat().st_mtime_ns == report  # no export


def test_a_foreign_host_header_is_refused(client):
    port = client.server.port
    for host in ["evil.example.com", f"evil.example.com:{port}", f"127.0.0.1.evil.com:{port}",
                 "localhost:abc", ""]:
        status, _ = client.raw("/", host=host)
        assert status == 400, host
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"]:
        status, _ = client.raw("/", host=host)
        assert status == 200, host


def test_hosts_allowed_when_listening_elsewhere():
    everywhere = Settings(db=Path("f.db"), output=Path("."), host="0.0.0.0")
    assert everywhere.host_allowed("192.168.1.20:8000") and everywhere.host_allowed("[fe80::1]:80")
    assert everywhere.host_allowed("localhost:8000")
    assert not everywhere.host_allowed("attacker.example:8000")  # DNS rebinding: a name
    lan = Settings(db=Path("f.db"), output=Path("."), host="192.168.1.20")
    assert lan.host_allowed("192.168.1.20:8000") and not lan.host_allowed("192.168.1.21:8000")


TRAVERSALS = [
    "/photo/../../etc/passwd", "/photo/..%2F..%2Fetc%2Fpasswd", "/photo/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/photo/..%252F..%252Fetc%252Fpasswd", "/photo/1/../../../etc/passwd", "/photo/%2Fetc%2Fpasswd",
    "/chip/../../etc/passwd", "/chip/..%2f..%2fetc%2fpasswd", "/chip/1%2F..%2F..%2Fetc%2Fpasswd",
    "/static/../../../../etc/passwd", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%5C..%5C..%5Cetc%5Cpasswd",
    "/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e%2fapp.py",
    "/photo/999999", "/photo/-1", "/photo/1.5", "/chip/999999", "/chip/abc", "/api/face/999999",
    "/photo/%00", "//etc/passwd", "/etc/passwd", "/person/../../etc/passwd",
]


def test_paths_that_are_not_ids_in_the_store_get_404(client):
    for path in TRAVERSALS:
        status, body = client.raw(path)
        assert status == 404, path
        assert b"root:" not in body and b"import" not in body, path
    assert client.raw("/static/app.css")[0] == 200


# -- corrections -------------------------------------------------------------------------------------

def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] and body["message"]
    return body


def test_every_correction_changes_the_store(client):
    db = client.server.settings.db
    with Store(db) as store:
        person = P.list_people(store)[0]
        faces = P.person_faces(store, person.id)
        unknown = P.person_faces(store, None)
    body = _ok(client.post("name", {"person": person.id, "name": "Barack"}))
    assert body["reload"] and "naming" in body["undo"]
    with Store(db) as store:
        assert P.get_person(store, person.id).name == "Barack"

    body = _ok(client.post("split", {"faces": faces[:2], "name": "Young Barack"}))
    assert body["removed"] == faces[:2]
    with Store(db) as store:
        split = P.resolve_person(store, "Young Barack")
        assert set(P.person_faces(store, split)) == set(faces[:2])
        assert body["link"] == f"/person/{split}"

    _ok(client.post("move", {"faces": [faces[2]], "to": str(split)}))
    with Store(db) as store:
        assert faces[2] in P.person_faces(store, split)

    _ok(client.post("reject", {"faces": [faces[3]]}))
    with Store(db) as store:
        assert P.rejected_faces(store) == [faces[3]]
    assert f'data-face="{faces[3]}"' in client.get("/rejected").text
    _ok(client.post("unreject", {"faces": [faces[3]]}))
    with Store(db) as store:
        assert P.rejected_faces(store) == []

    body = _ok(client.post("merge", {"person": person.id, "other": "Young Barack"}))
    assert body["message"] == "Merged Young Barack into Barack"
    with Store(db) as store:
        assert set(faces[:3]) <= set(P.person_faces(store, person.id))
    body = _ok(client.post("undo"))
    assert body["message"].startswith("Undid merging")
    with Store(db) as store:
        assert set(P.person_faces(store, split)) == set(faces[:3])

    if unknown:
        _ok(client.post("split", {"faces": unknown[:1], "name": "Joe"}))
        with Store(db) as store:
            assert P.person_faces(store, P.resolve_person(store, "Joe")) == unknown[:1]

    page = client.get(f"/person/{split}")
    assert "Young Barack" in page.text and "Undo" in page.text


def test_refused_corrections_say_why_and_change_nothing(client):
    db = client.server.settings.db
    with Store(db) as store:
        person = P.list_people(store)[0]
        face = P.person_faces(store, person.id)[0]
    before = dump(db)
    for action, data, words in [
        ("name", {"person": person.id, "name": "  "}, "cannot be empty"),
        ("merge", {"person": person.id, "other": person.id}, "merged with itself"),
        ("merge", {"person": person.id, "other": "Nobody At All"}, "no person called"),
        ("move", {"faces": [face], "to": str(person.id)}, "already in person"),
        ("move", {"faces": [face]}, "choose a person"),
        ("reject", {"faces": []}, "no faces"),
        ("reject", {"faces": "1; DROP TABLE faces"}, "no faces selected"),
        ("reject", {"faces": [424242]}, "no face 424242"),
        ("unreject", {"faces": [face]}, "is not rejected"),
        ("undo", {}, "nothing to undo"),
        ("answer", {"question": "people:1:1", "answer": "yes"}, "is not a question"),
        ("answer", {"question": "nonsense", "answer": "maybe"}, "yes, no or skip"),
    ]:
        response = client.post(action, data)
        assert response.status_code == 409, (action, response.text)
        assert words in response.json()["error"], (action, response.json())
    response = client.http.post("/api/name", content=b"[1, 2", headers={"X-Token": client.token})
    assert response.status_code == 400
    assert dump(db) == before


def test_the_queue_answers_become_corrections(client):
    suggest = pytest.importorskip("facecluster.suggest")
    db = client.server.settings.db
    with Store(db) as store:
        person = P.list_people(store)[0]
        P.move_faces(store, P.person_faces(store, person.id)[:3], None)  # two people: a question
        questions = suggest.suggest(store)
    if not questions:
        pytest.skip("the queue has no question for the sample photos")
    page = client.get("/queue")
    assert f'data-question="{questions[0].id}"' in page.text
    count = client.get("/api/queue/count").json()["count"]
    assert count >= 1
    with Store(db) as store:
        corrections = len(P.history(store, 100))
    body = _ok(client.post("answer", {"question": questions[0].id, "answer": "no"}))
    assert body["reload"]
    with Store(db) as store:
        assert len(P.history(store, 100)) == corrections + 1
        assert all(q.id != questions[0].id for q in suggest.suggest(store))
    assert f'data-question="{questions[0].id}"' not in client.get("/queue").text


def test_update_folders_exports_into_the_output_folder(client):
    output = client.server.settings.output
    (output / "index.html").unlink()
    body = _ok(client.post("export"))
    assert str(output) in body["message"] and (output / "index.html").is_file()
    assert "facecluster review" in (output / "index.html").read_text()


# -- large stores stay paged ---------------------------------------------------------------------------

def test_people_and_faces_are_paged(tmp_path):
    db = synthetic_store(tmp_path / "faces.db", [450] + [2] * 299, unknown=5)
    with ReviewServer(db) as server:
        client = Client(server)
        first = client.get("/")
        assert first.text.count('class="person-card"') == 120
        assert 'data-more="/people/more?q=&amp;offset=120"' in first.text
        more = client.get("/people/more", params={"offset": 240})
        assert more.text.count('class="person-card"') == 60 and "X-Next" not in more.headers
        assert more.headers["X-Total"] == "300"
        found = client.get("/", params={"q": "person_0123"})
        assert found.text.count('class="person-card"') == 1 and 'href="/person/123"' in found.text
        big = client.get("/person/1")
        assert big.text.count('class="chip"') == 200
        assert 'data-more="/person/1/faces?offset=200"' in big.text
        last = client.get("/person/1/faces", params={"offset": 400})
        assert last.text.count('class="chip"') == 50 and "X-Next" not in last.headers
        assert client.get("/unknown").status_code == 200


def test_unknown_faces_are_grouped_by_similarity():
    rng = np.random.default_rng(0)
    a, b, far = rng.normal(size=(3, 128)) * 0.1
    X = np.stack([a, b + 0.01, a + 0.01, far, b, a - 0.01])
    groups = group_faces([10, 11, 12, 13, 14, 15], X, cut=0.4)
    assert groups == [[10, 12, 15], [11, 14], [13]]


# -- the command -----------------------------------------------------------------------------------------

def _review(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facecluster.cli", "review", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_review_command_serves_until_ctrl_c(sample_run):
    process = _review(sample_run, "--no-browser", "--json")
    try:
        line = process.stdout.readline()
        ready = json.loads(line)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", ready["url"])
        assert ready["db"] == str(sample_run / "faces.db") and ready["output"] == str(sample_run)
        assert httpx.get(ready["url"], timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_review_command_warns_when_listening_beyond_this_machine(sample_run):
    process = _review("--db", sample_run / "faces.db", "--host", "0.0.0.0", "--no-browser", "--json")
    try:
        ready = json.loads(process.stdout.readline())
        assert httpx.get(ready["url"], timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0" in err


def test_review_command_without_a_store_says_what_to_do(tmp_path):
    from click.testing import CliRunner

    from facecluster.cli import main

    result = CliRunner().invoke(main, ["review", str(tmp_path), "--no-browser"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: no faces.db in {tmp_path}: run `facecluster run PHOTOS -o "
                                     f"{tmp_path}` first, or give --db")


# -- the static report --------------------------------------------------------------------------------------

def test_report_shows_ids_lines_up_tiles_and_tells_how_to_review(tmp_path):
    from facecluster.report import TILE, write_report

    summary = {"people": [{"id": 12, "name": "Ann", "folder": "Ann", "faces": 30, "photos": 20},
                          {"id": 7, "name": None, "folder": "person_0007", "faces": 2, "photos": 2}],
               "unknown_faces": 1, "unknown_folder": "unknown",
               "counts": {"faces": 33, "photos": 22, "unreadable": 0, "missing": 0},
               "unreadable": [], "runs": [{"command": "cluster", "seconds": 1.5,
                                           "params": {"algorithm": "graph"}}]}
    page = write_report(tmp_path, summary).read_text()
    assert f"facecluster review {tmp_path}" in page
    assert re.search(r"<details><summary>Run settings</summary>.*algorithm=graph.*</details>", page, re.DOTALL)
    assert '<span class="id" title="id for the command line">12</span>' in page
    assert f'width="{5 * TILE}" height="{5 * TILE}"' in page  # Ann: a full 5 x 5 montage
    assert f'width="{2 * TILE}" height="{TILE}"' in page  # person 7: two tiles, the same size
    assert f'src="unknown/montage.jpg" loading="lazy" width="{TILE}" height="{TILE}"' in page


def test_ids_too_large_for_the_store_are_not_found(client):
    huge = "9" * 30
    for path in (f"/chip/{huge}", f"/photo/{huge}", f"/api/face/{huge}", f"/person/{huge}"):
        assert client.raw(path)[0] == 404, path
    assert client.post("name", {"person": int(huge), "name": "X"}).status_code in (404, 409)
