"""A small WSGI site wrapped in HitmetrixWSGI, served by wsgiref (threaded) in the SDK's integration tests.

``python -m tests.sdk.hosts.wsgi_host PORT``. ``/_stats`` answers the SDK's counters from outside the middleware.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from hitmetrix.sdk import ROUTE_KEY, HitmetrixWSGI, set_user
from tests.sdk.hosts.config import client_from_env

client = client_from_env()


def site(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/profiles/"):
        environ[ROUTE_KEY] = "/profiles/<member_id>"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"member {path.rsplit('/', 1)[1]}: Anna, 34, likes hiking\n".encode()]
    if path == "/signin" and environ["REQUEST_METHOD"] == "POST":
        environ[ROUTE_KEY] = "/signin"
        form = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        ok = form.get("password") == "correct horse"
        user_id = "u-" + form["username"].split("@")[0] if ok else None
        client.track_auth("signin", form["username"], ok, request=environ, user_id=user_id)
        if ok:
            set_user(environ, user_id)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"welcome\n" if ok else b"wrong username or password\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


wrapped = HitmetrixWSGI(site, client)


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/_stats":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(client.stats()).encode()]
    return wrapped(environ, start_response)


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", int(sys.argv[1]), app, server_class=ThreadingServer, handler_class=QuietHandler)
    server.serve_forever()
