"""The review server: uvicorn on a socket bound before it starts, so its URL is known at once
(port 0 picks a free port)."""

from __future__ import annotations

import os
import socket
import threading
import time

import uvicorn

from facecluster.web.app import create_app

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ReviewServer:
    """The review app for ``db`` listening on ``host:port``; :meth:`run` serves until Ctrl-C,
    :meth:`start` / :meth:`stop` serve from a background thread (tests, benchmarks).

    Raises OSError when the address cannot be bound (a port in use, an unknown host).
    """

    def __init__(self, db: str | os.PathLike, output: str | os.PathLike | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.app = create_app(db, output, host)
        self.settings = self.app.settings
        self.host = host
        bind_host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio then sets TCP_NODELAY
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((bind_host, port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=3, server_header=False)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host.strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    @property
    def started(self) -> bool:
        return self.server.started

    def run(self) -> None:
        """Serve until Ctrl-C (or SIGTERM); then finish the requests in flight and return."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 20) -> ReviewServer:
        self.thread = threading.Thread(target=self.run, name="facecluster-review", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
