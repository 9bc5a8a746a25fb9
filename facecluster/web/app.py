"""The review app: server-rendered pages over :mod:`facecluster.store.people` (and
:mod:`facecluster.suggest`), the same functions the command line calls.

Routes (every change is a POST that carries the server's session token in ``X-Token``)::

    GET  /                       people, largest first (?q= search)      /people/more   next cards
    GET  /person/{id}            a person's faces, 200 at a time         /person/{id}/faces?offset=
    GET  /unknown                unknown faces grouped by similarity     /unknown/more?offset=
    GET  /rejected               rejected faces                          /rejected/faces?offset=
    GET  /queue                  "Same person?" one question at a time
    GET  /chip/{face}            a face's 150 px chip (JPEG)
    GET  /photo/{media}          the photo, downscaled (JPEG; ?t= frame time for a video)
    GET  /api/face/{face}        the photo a face comes from, with every face's box and person
    GET  /api/people?q=          people for name autocomplete
    GET  /api/queue/count        how many questions are waiting
    GET  /api/status             the top bar's counts and what Undo would undo
    POST /api/name /api/merge /api/move /api/split /api/reject /api/unreject /api/undo
    POST /api/answer /api/export

Chips and photos are looked up by id in the store, never by a path from the request.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from facecluster.store import Store
from facecluster.store import people as P
from facecluster.web.queue import LIMIT as QUEUE_LIMIT
from facecluster.web.queue import Queue
from facecluster.web.unknown import unknown_groups

HERE = Path(__file__).parent
PEOPLE_PAGE = 120
FACES_PAGE = 200
GROUPS_PAGE = 24
PHOTO_SIDE = 1600  # longest side of a photo shown in the viewer
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WILDCARD = {"0.0.0.0", "::", ""}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


@dataclass
class Settings:
    """What a review server serves and who may talk to it."""

    db: Path
    output: Path
    host: str = "127.0.0.1"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def host_allowed(self, header: str) -> bool:
        """Loopback names always; the --host given; any IP address or this machine's name when
        it listens on every interface. A rebinding attacker's domain name is never allowed."""
        name = _host_name(header)
        if name is None:
            return False
        if name in LOOPBACK or name == self.host.lower().strip("[]"):
            return True
        if self.host.strip("[]") in WILDCARD:
            return _is_ip(name) or name in {socket.gethostname().lower(),
                                            socket.gethostname().lower() + ".local"}
        return False


def _host_name(header: str) -> str | None:
    """The name in a Host header (``localhost:8080`` -> ``localhost``, ``[::1]:80`` -> ``::1``)."""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, port = (host[1:end], host[end + 1:]) if end > 0 else (None, "")
        if port and not port.startswith(":"):
            return None
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- security: Host, token, headers -----------------------------------------------------------------

class Guard:
    """ASGI middleware: refuses a foreign Host header (400: DNS rebinding), any change without
    the session token or from another origin (403), and adds headers that keep other sites from
    framing the pages or embedding the chips and photos."""

    HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
               (b"cross-origin-resource-policy", b"same-origin"))

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.settings.host_allowed(headers.get(b"host", "")):
            return await Response("Invalid Host header", 400)(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get(b"origin")
            if origin and not self.settings.host_allowed(origin.partition("://")[2]):
                return await _refuse("this page may only be changed from the review app")(scope, receive, send)
            token = headers.get(b"x-token", "")
            if not secrets.compare_digest(token.encode(), self.settings.token.encode()):
                return await _refuse("the review server was restarted: reload the page")(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Refused(Exception):
    """A change the app cannot make now; the message says why (shown to the user)."""


def _refuse(message: str) -> Response:
    return JSONResponse({"ok": False, "error": message}, 403)


# -- the store, one connection per worker thread ------------------------------------------------------

class Stores(threading.local):
    """Each worker thread keeps its own SQLite connection to the store."""

    def __init__(self, db: Path):
        self.db = db
        self.store: Store | None = None

    def get(self) -> Store:
        if self.store is None:
            self.store = Store(self.db)
        return self.store


# -- page helpers -----------------------------------------------------------------------------------

def label(person_id: int | None, name: str | None = None) -> str:
    """How a person is shown: their name, else their id as person_0012."""
    if person_id is None:
        return "Unknown"
    return name or f"person_{person_id:04d}"


def plural(n: int, word: str, many: str | None = None) -> str:
    many = many or {"person": "people"}.get(word, word + "s")
    return f"{n:,} {word if n == 1 else many}"


def describe(store: Store, correction: dict | None) -> str | None:
    """A correction in words: "naming person_0012 “Ann”"."""
    if not correction:
        return None
    who = lambda person: _label_of(store, person)
    action, faces = correction["action"], correction.get("faces") or []
    if action == "name":
        return f"naming {label(correction['person'])} “{correction['name']}”"
    if action == "merge":
        people = correction["people"]
        return f"merging {', '.join(label(p) for p in people[1:])} into {who(people[0])}"
    if action == "move":
        return f"moving {plural(len(faces), 'face')} to {who(correction['person'])}"
    if action == "split":
        named = f" as “{correction['name']}”" if correction.get("name") else ""
        return f"splitting off {plural(len(faces), 'face')}{named}"
    if action == "reject":
        return f"rejecting {plural(len(faces), 'face')}"
    if action == "unreject":
        return f"taking back {plural(len(faces), 'rejected face')}"
    if action == "confirm":
        return f"confirming {plural(len(faces), 'face')} of {who(correction['person'])}"
    if action == "different":
        a, b = correction["people"]
        return f"“{who(a)} and {who(b)} are different people”"
    if action == "not-person":
        return f"“face {correction['face']} is not {who(correction['person'])}”"
    return action.replace("-", " ")


def _static_version() -> str:
    digest = hashlib.sha1()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    version = _static_version()
    env.globals.update(label=label, plural=plural,
                       static=lambda name: f"/static/{name}?v={version}")
    env.filters["n"] = lambda n: f"{n:,}"
    return env


# -- the app ----------------------------------------------------------------------------------------

class Review:
    """Route functions: short, each one calls the people API.

    What every page needs from the whole collection (people and their face counts, the unknown
    groups, the questions) is kept until the store changes, which SQLite tells for free
    (``PRAGMA data_version`` on a connection that only watches): a change made here, by
    another tab, or by a `facecluster run` in a terminal.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stores = Stores(settings.db)
        self.env = _environment()
        self.export_lock = threading.Lock()
        self.photos: OrderedDict[tuple, bytes] = OrderedDict()
        self.photos_lock = threading.Lock()
        Store(settings.db).close()  # creates or upgrades it before anything watches it
        self.watch = sqlite3.connect(settings.db, check_same_thread=False, isolation_level=None)
        self.cache: dict = {}
        self.cache_lock = threading.Lock()
        self.queue = Queue(settings.db)

    @property
    def store(self) -> Store:
        return self.stores.get()

    def key(self) -> int:
        """Changes whenever anything (here or elsewhere) commits a change to the store."""
        with self.cache_lock:
            return self.watch.execute("PRAGMA data_version").fetchone()[0]

    def cached(self, name, compute):
        key = self.key()
        with self.cache_lock:
            hit = self.cache.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]
        value = compute()
        with self.cache_lock:
            self.cache = {k: v for k, v in self.cache.items() if v[0] == key}
            self.cache[name] = (key, value)
        return value

    def people_counts(self) -> list:
        return self.cached("people", lambda: P.people_counts(self.store))

    def people_page(self, query: str, offset: int, limit: int) -> tuple[list[P.Person], int]:
        """As :func:`people.people_page`, from the cached counts and best faces."""
        found = P.search_people(self.people_counts(), query)
        page = found[offset:offset + limit]
        best = self.cached("best", dict)  # person -> best face, filled as pages are shown
        missing = [p[0] for p in page if p[0] not in best]
        best.update(P.best_faces(self.store, missing) if missing else {})
        return [P.Person(p[0], p[1], p[2], best.get(p[0])) for p in page], len(found)

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, **self.common(template), **context)
        return HTMLResponse(html, status)

    def fragment(self, template: str, next_url: str | None, **context) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, headers={"X-Next": next_url} if next_url else {})

    def common(self, template: str) -> dict:
        tab = {"person": "people", "missing": "people"}.get(template[:-5], template[:-5])
        return {"token": self.settings.token, "tab": tab, **self.status()}

    def status(self) -> dict:
        """What the top bar shows: counts and the correction Undo would undo."""
        store = self.store
        return {"counts": self.cached("counts", lambda: P.face_counts(store)),
                "people_total": len(self.people_counts()),
                "undo": describe(store, P.undoable(store)), "output": str(self.settings.output)}

    # -- pages
    def people(self, request: Request):
        query = request.query_params.get("q", "").strip()
        people, total = self.people_page(query, 0, PEOPLE_PAGE)
        return self.render(request, "people.html", people=people, total=total, query=query,
                           next_url=_more("/people/more", query, PEOPLE_PAGE, total))

    def people_more(self, request: Request):
        query = request.query_params.get("q", "").strip()
        offset = _int(request.query_params.get("offset"), 0)
        people, total = self.people_page(query, offset, PEOPLE_PAGE)
        response = self.fragment("_cards.html", _more("/people/more", query, offset + PEOPLE_PAGE, total),
                                 people=people, total=total, query=query)
        response.headers["X-Total"] = str(total)
        return response

    def person(self, request: Request):
        person_id = request.path_params["person"]
        live = P.person_exists(self.store, person_id)
        if live is None:
            return self.render(request, "missing.html", 404, what=f"There is no person {person_id}.")
        if live != person_id:
            return RedirectResponse(f"/person/{live}", 303)
        faces = P.person_faces(self.store, person_id, 0, FACES_PAGE)
        count = next((p[2] for p in self.people_counts() if p[0] == person_id), 0)
        name = self.store.db.execute("SELECT name FROM people WHERE id=?", (person_id,)).fetchone()[0]
        person = P.Person(person_id, name, count, faces[0] if faces else None)
        photos = self.cached(("photos", person_id), lambda: P.person_photo_count(self.store, person_id))
        return self.render(request, "person.html", person=person, faces=faces, photos=photos,
                           next_url=_faces_more(f"/person/{person_id}/faces", FACES_PAGE, count))

    def person_faces(self, request: Request):
        person_id = request.path_params["person"]
        offset = _int(request.query_params.get("offset"), 0)
        faces = P.person_faces(self.store, person_id, offset, FACES_PAGE)
        more = f"/person/{person_id}/faces?offset={offset + FACES_PAGE}" if len(faces) == FACES_PAGE else None
        return self.fragment("_chips.html", more, faces=faces)

    def groups(self) -> tuple[list[list[int]], int]:
        """Groups of look-alike unknown faces, then one of every face that looks like no one
        else; and how many real groups there are."""
        def compute():
            groups = unknown_groups(self.store)
            alike = [g for g in groups if len(g) > 1]
            alone = [face for g in groups if len(g) == 1 for face in g]
            return alike + ([alone] if alone else []), len(alike)
        return self.cached("groups", compute)

    def unknown(self, request: Request):
        groups, alike = self.groups()
        return self.render(request, "unknown.html", groups=groups[:GROUPS_PAGE], start=0, alike=alike,
                           together=sum(len(g) for g in groups[:alike]),
                           next_url=f"/unknown/more?offset={GROUPS_PAGE}" if len(groups) > GROUPS_PAGE else None)

    def unknown_more(self, request: Request):
        offset = _int(request.query_params.get("offset"), 0)
        groups, alike = self.groups()
        more = f"/unknown/more?offset={offset + GROUPS_PAGE}" if len(groups) > offset + GROUPS_PAGE else None
        return self.fragment("_groups.html", more, groups=groups[offset:offset + GROUPS_PAGE], start=offset,
                             alike=alike)

    def rejected(self, request: Request):
        faces = P.rejected_faces(self.store)
        return self.render(request, "rejected.html", faces=faces[:FACES_PAGE],
                           next_url=_faces_more("/rejected/faces", FACES_PAGE, len(faces)))

    def rejected_more(self, request: Request):
        offset = _int(request.query_params.get("offset"), 0)
        faces = P.rejected_faces(self.store)
        more = f"/rejected/faces?offset={offset + FACES_PAGE}" if len(faces) > offset + FACES_PAGE else None
        return self.fragment("_chips.html", more, faces=faces[offset:offset + FACES_PAGE])

    def queue_page(self, request: Request):
        if not self.queue.available:
            return self.render(request, "queue.html", question=None, waiting=0, unavailable=True)
        questions = self.queue.get(self.store, self.key())
        question = questions[0] if questions else None
        names, where, own = {}, None, False
        if question is not None:
            people = [question.person] + ([question.other] if question.kind == "people" else [])
            names = {p: _label_of(self.store, p) for p in people}
            if question.kind == "face":
                info = P.face_photo(self.store, question.other) or {"faces": []}
                now = next((f for f in info["faces"] if f["id"] == question.other), None)
                where = ("now in " + label(now["person"], now["name"]) if now and now["person"]
                         else "now unknown")
                own = bool(now) and now["person"] == question.person
        return self.render(request, "queue.html", question=question, names=names, where=where, own=own,
                           waiting=len(questions), limit=QUEUE_LIMIT, unavailable=False)

    # -- images
    def chip(self, request: Request):
        chip = P.face_chip(self.store, request.path_params["face"])
        if chip is None:
            raise HTTPException(404)
        etag = f'"{hashlib.blake2b(chip, digest_size=8).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=600"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(chip, media_type="image/jpeg", headers=headers)

    def photo(self, request: Request):
        media_id = request.path_params["media"]
        found = P.media_file(self.store, media_id)
        if found is None:
            raise HTTPException(404)
        path, kind = found
        moment = _float(request.query_params.get("t"))
        key = (media_id, path, moment)
        with self.photos_lock:
            data = self.photos.get(key)
        if data is None:
            data = _downscaled(path, kind, moment)
            if data is None:
                raise HTTPException(404)
            with self.photos_lock:
                self.photos[key] = data
                while len(self.photos) > 24:
                    self.photos.popitem(last=False)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    # -- JSON
    def face(self, request: Request):
        info = P.face_photo(self.store, request.path_params["face"])
        if info is None:
            raise HTTPException(404)
        path = info.pop("path")
        name = os.fsdecode(path) if isinstance(path, bytes) else path
        if info["kind"] == "photo" and not (info["width"] and info["height"]):
            info["width"], info["height"] = _photo_size(name)
        time_query = f"?t={info['time']}" if info["time"] is not None else ""
        for face in info["faces"]:
            face["label"] = ("rejected" if face["rejected"] else label(face["person"], face["name"])
                             if face["person"] is not None else "unknown")
            face["href"] = f"/person/{face['person']}" if face["person"] is not None else \
                ("/rejected" if face["rejected"] else "/unknown")
        return JSONResponse({**info, "file": os.path.basename(name), "folder": os.path.dirname(name),
                             "image": f"/photo/{info['media']}{time_query}"
                             if info["kind"] in ("photo", "video") else None})

    def people_json(self, request: Request):
        query = request.query_params.get("q", "").strip()
        people, _ = self.people_page(query, 0, 8)
        return JSONResponse([{"id": p.id, "label": label(p.id, p.name), "name": p.name,
                              "faces": p.faces, "chip": f"/chip/{p.best_face}" if p.best_face else None}
                             for p in people])

    def queue_count_json(self, request: Request):
        if not self.queue.available:
            return JSONResponse({"count": None, "limit": QUEUE_LIMIT})
        return JSONResponse({"count": self.queue.count(self.store, self.key()), "limit": QUEUE_LIMIT})

    def status_json(self, request: Request):
        return JSONResponse(self.status())

    # -- changes
    def name(self, data: dict) -> dict:
        person = P.name_person(self.store, _person(data, "person"), str(data.get("name") or ""))
        return {"message": f"Named {label(person)} “{data['name'].strip()}”", "reload": True}

    def merge(self, data: dict) -> dict:
        store = self.store
        other = _ref(data.get("other"), "the person to merge with")
        other_label = _label_of(store, other)
        person = P.merge_people(store, [_person(data, "person"), other])
        return {"message": f"Merged {other_label} into {_label_of(store, person)}", "reload": True}

    def move(self, data: dict) -> dict:
        faces = _faces(data)
        person = P.move_faces(self.store, faces, _ref(data.get("to"), "a person to move them to"))
        return {"message": f"Moved {plural(len(faces), 'face')} to {_label_of(self.store, person)}",
                "link": f"/person/{person}", "removed": faces}

    def split(self, data: dict) -> dict:
        faces = _faces(data)
        name = (data.get("name") or "").strip() or None
        person = P.move_faces(self.store, faces, None, name=name)
        return {"message": f"Split {plural(len(faces), 'face')} off as {_label_of(self.store, person)}",
                "link": f"/person/{person}", "removed": faces}

    def reject(self, data: dict) -> dict:
        faces = _faces(data)
        P.reject_faces(self.store, faces)
        return {"message": f"Rejected {plural(len(faces), 'face')}", "removed": faces}

    def unreject(self, data: dict) -> dict:
        faces = _faces(data)
        P.unreject_faces(self.store, faces)
        return {"message": f"{plural(len(faces), 'face')} taken back: unknown until the next run"
                           " places them", "removed": faces}

    def undo(self, data: dict) -> dict:
        store = self.store
        correction = P.undoable(store)
        P.undo(store)
        self.queue.undone(store, correction["id"] if correction else None)
        return {"message": f"Undid {describe(store, correction)}", "reload": True, "undoable": False}

    def answer(self, data: dict) -> dict:
        try:
            from facecluster.suggest import answer
        except ImportError:
            raise Refused("this version of facecluster has no question queue") from None
        reply = str(data.get("answer", ""))
        if reply not in ("yes", "no", "skip"):
            raise P.CorrectionError("answer yes, no or skip")
        store, question = self.store, str(data.get("question", ""))
        before = P.undoable(store)
        message = answer(store, question, reply)
        after = P.undoable(store)
        made = after["id"] if after and (before is None or after["id"] != before["id"]) else None
        self.queue.answered_one(store, question.strip(), made)
        return {"message": message, "reload": True, "undoable": made is not None}

    def export(self, data: dict) -> dict:
        from facecluster.export import ExportError, export

        if not self.export_lock.acquire(blocking=False):
            raise Refused("the folders are being updated already")
        try:
            started = time.monotonic()
            summary = export(self.settings.db, self.settings.output, quiet=True)
        except ExportError as error:
            raise Refused(str(error)) from None
        finally:
            self.export_lock.release()
        warnings = summary.get("warnings") or []
        text = (f"Folders updated in {self.settings.output}: {plural(len(summary['people']), 'person')}, "
                f"{plural(summary.get('unknown_faces', 0), 'unknown face')} "
                f"({time.monotonic() - started:.1f} s)")
        if warnings:
            text += f"; {plural(len(warnings), 'warning')}: {warnings[0]}"
        return {"message": text, "undoable": False}

    def after_change(self) -> dict:
        """What every page shows that a change may have changed: the undo button, the counts."""
        self.queue.changed(self.key())
        status = self.status()
        return {"undo": status["undo"], "counts": {**status["counts"], "people": status["people_total"]}}

    def routes(self) -> list:
        def change(method):
            async def endpoint(request: Request):
                try:
                    data = await request.json() if await request.body() else {}
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    return JSONResponse({"ok": False, "error": "the request is not a JSON object"}, 400)
                try:
                    result = await run_in_threadpool(method, data)
                except (P.CorrectionError, Refused) as error:
                    return JSONResponse({"ok": False, "error": str(error)}, 409)
                extra = await run_in_threadpool(self.after_change)
                return JSONResponse({"ok": True, **extra, **result})
            return endpoint

        get = lambda path, fn: Route(path, fn, methods=["GET", "HEAD"])
        post = lambda name: Route(f"/api/{name}", change(getattr(self, name)), methods=["POST"])
        return [
            get("/", self.people), get("/people/more", self.people_more),
            get("/person/{person:int}", self.person), get("/person/{person:int}/faces", self.person_faces),
            get("/unknown", self.unknown), get("/unknown/more", self.unknown_more),
            get("/rejected", self.rejected), get("/rejected/faces", self.rejected_more),
            get("/queue", self.queue_page),
            get("/chip/{face:int}", self.chip), get("/photo/{media:int}", self.photo),
            get("/api/face/{face:int}", self.face), get("/api/people", self.people_json),
            get("/api/queue/count", self.queue_count_json), get("/api/status", self.status_json),
            *[post(name) for name in ("name", "merge", "move", "split", "reject", "unreject", "undo",
                                      "answer", "export")],
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def not_found(self, request: Request, exc: HTTPException):
        if request.url.path.startswith(("/api/", "/chip/", "/photo/", "/static/")) or exc.status_code != 404:
            return JSONResponse({"ok": False, "error": exc.detail}, exc.status_code)
        return self.render(request, "missing.html", 404, what="There is no such page.")


def create_app(db: str | os.PathLike, output: str | os.PathLike | None = None, host: str = "127.0.0.1",
               token: str | None = None) -> Guard:
    """The review app (an ASGI app; ``.settings`` holds its token) for the store ``db``;
    "Update folders" exports into ``output`` (default: the store's folder)."""
    db = Path(db).expanduser().absolute()
    settings = Settings(db=db, output=Path(output).expanduser().absolute() if output else db.parent,
                        host=host, **({"token": token} if token else {}))
    review = Review(settings)
    app = Starlette(routes=review.routes(), exception_handlers={
        HTTPException: review.not_found,
        # an id past SQLite's 64-bit integers names nothing in the store
        OverflowError: lambda request, exc: review.not_found(request, HTTPException(404))})
    app.state.settings = settings
    return Guard(app, settings)


# -- small helpers ----------------------------------------------------------------------------------

def _more(base: str, query: str, offset: int, total: int) -> str | None:
    if offset >= total:
        return None
    return f"{base}?{urlencode({'q': query, 'offset': offset})}"


def _faces_more(base: str, offset: int, total: int) -> str | None:
    return f"{base}?offset={offset}" if total > offset else None


def _int(text, default: int) -> int:
    try:
        return max(0, int(text))
    except (TypeError, ValueError):
        return default


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and abs(value) < 1e9 else None


def _faces(data: dict) -> list[int]:
    faces = data.get("faces")
    if not isinstance(faces, list) or not all(isinstance(f, int) and not isinstance(f, bool)
                                              for f in faces):
        raise P.CorrectionError("no faces selected")
    return faces


def _ref(value, what: str) -> str:
    text = str(value if value is not None else "").strip()
    if not text:
        raise P.CorrectionError(f"choose {what}")
    return text


def _person(data: dict, key: str) -> str:
    return _ref(data.get(key), "a person")


def _label_of(store: Store, ref) -> str:
    """A person's label from an id, a name or person_0012 (as given, if there is no such person)."""
    try:
        person = P.resolve_person(store, ref)
    except P.CorrectionError:
        row = store.db.execute("SELECT name FROM people WHERE id=?", (ref,)).fetchone() \
            if str(ref).isdigit() else None
        return label(int(ref), row[0]) if row else str(ref)
    return label(person, store.db.execute("SELECT name FROM people WHERE id=?", (person,)).fetchone()[0])


def _downscaled(path, kind: str, moment: float | None) -> bytes | None:
    """The photo (or the video frame at ``moment``) as a JPEG no larger than PHOTO_SIDE."""
    from PIL import Image

    try:
        if kind == "video":
            image = _video_frame(path, moment or 0.0)
        elif kind == "photo":
            from facecluster.media import load_photo

            image = Image.fromarray(load_photo(path, max_pixels=PHOTO_SIDE ** 2 * 1.5).pixels)
        else:
            return None
    except Exception:  # noqa: BLE001 - a photo that is gone or unreadable now: nothing to show
        return None
    if image is None:
        return None
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _photo_size(path: str) -> tuple[int | None, int | None]:
    """A photo's upright size from its header (for a store that did not record it)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation
    except Exception:  # noqa: BLE001 - gone or unreadable: the viewer says so
        return None, None
    return (height, width) if turned else (width, height)


def _video_frame(path, moment: float):
    import av

    with av.open(os.fsdecode(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base:
            container.seek(int(max(0.0, moment - 1) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= moment - 1e-3:
                return frame.to_image()
    return None
