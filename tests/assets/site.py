"""A scripted web server on 127.0.0.1 for asset-capture tests: per path an answer, and a log of every request."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """How to answer one path. ``hold_s`` waits that long (or until ``Site.close``) before the headers;
    ``trickle_s`` waits between body pieces; ``chunked`` sends no Content-Length."""

    body: bytes = b""
    content_type: str = "text/plain"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0
    trickle_s: float = 0.0
    chunked: bool = False
    gated: bool = False  # waits for one ``Site.gate.release()`` before answering
    browsers_only: bool = False  # 403 to the asset fetcher (its User-Agent): only a browser gets the body


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


class Site:
    """Answers each path from ``answers`` (404 for others), records requests and how many ran at once."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[Seen] = []
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate = threading.Semaphore(0)  # one release lets one gated answer go on
        self.release = threading.Event()  # set at the end: every wait ends at once
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0]
                with site.lock:
                    site.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                    site.hits[path] += 1
                    site.in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site.in_flight)
                answer = site.answers.get(path, Answer(b"not found", status=404))
                if answer.browsers_only and self.headers.get("User-Agent", "").startswith("Hitmetrix-AssetFetcher"):
                    answer = Answer(b"browsers only", status=403)
                try:
                    self._answer(answer)
                finally:
                    with site.lock:
                        site.in_flight -= 1

            def _answer(self, answer: Answer) -> None:
                if answer.hold_s:
                    site.release.wait(answer.hold_s)
                if answer.gated:
                    site.gate.acquire(timeout=30)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [answer.body[i : i + 1024] for i in range(0, len(answer.body), 1024)] or [b""]
                try:
                    for piece in pieces:
                        if answer.trickle_s:
                            site.release.wait(answer.trickle_s)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if answer.chunked else piece)
                        self.wfile.flush()
                    if answer.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the fetcher gave up on us: what the test wanted
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="asset-site", daemon=True
        )
        self.thread.start()

    def add(self, path: str, body: bytes | str = b"", content_type: str = "text/plain", **options: Any) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        self.answers[path] = Answer(data, content_type, **options)
        return self.url + path

    def close(self) -> None:
        self.release.set()
        for _ in range(100):
            self.gate.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
