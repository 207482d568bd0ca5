"""Test support: real server processes on 127.0.0.1 (whose logs are checked for tracebacks) and batch builders."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.05, what: str = "") -> Any:
    """Poll a condition until it holds or the deadline passes (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - the condition may fail until ready
            last_exc = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}: {last_exc!r}")


class ServerProcess:
    """`hitmetrix serve` as a real child process.

    Its log is scanned for tracebacks after every test (tests/conftest.py): a
    traceback fails the test unless the server was started with
    ``allow_tracebacks=True`` or the test is marked ``expect_tracebacks``, for
    tests that provoke a logged error on purpose.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        demo: bool = True,
        env: dict[str, str] | None = None,
        allow_tracebacks: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.env = env or {}
        self.allow_tracebacks = allow_tracebacks
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.log_checked_bytes = 0
        SERVERS.append(self)

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        """Start (or restart, on the same port) and wait until healthy."""
        cmd = [
            sys.executable,
            "-m",
            "hitmetrix.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        if self.demo:
            cmd.append("--demo")
        env = {**os.environ, "HITMETRIX_LOG_LEVEL": "warning", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200

        wait_for(healthy, timeout_s, what="server health")
        return self

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def new_tracebacks(self) -> list[str]:
        """Tracebacks this server logged since the last call (each as its text up to the exception line)."""
        if self.proc is not None and self.proc.poll() is None:
            # A request after the test's last one: the server has logged whatever that one raised.
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/healthz", timeout=5.0)
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_checked_bytes)
                fresh = log.read()
        except FileNotFoundError:
            return []
        complete = fresh[: fresh.rfind(b"\n") + 1]  # a line still being written is read next time
        self.log_checked_bytes += len(complete)
        return tracebacks_in(complete.decode(errors="replace"))

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def api(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30.0)


SERVERS: list[ServerProcess] = []  # every server the tests made, for the traceback gate


def tracebacks_in(log_text: str) -> list[str]:
    """Each traceback in a log: its "Traceback" line, the indented frames, and the exception line."""
    found = []
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if "Traceback" in line:
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or lines[end][:1].isspace()):
                end += 1
            found.append("\n".join(lines[i : end + 1]))
    return found


def unexpected_tracebacks() -> list[str]:
    """Tracebacks logged since the last call by servers that did not expect any, with the log they are in."""
    found = []
    for server in SERVERS:
        fresh = server.new_tracebacks()
        if not server.allow_tracebacks:
            found += [f"{server.log_path}:\n{text}" for text in fresh]
    return found


def gzip_b64(rrweb_events: list[dict[str, Any]]) -> str:
    return base64.b64encode(gzip.compress(json.dumps(rrweb_events).encode())).decode()


def new_id() -> str:
    return uuid.uuid4().hex[:20]


def make_batch(
    *, session_id: str | None = None, events: int = 3, names: list[str] | None = None, chunks: int = 0, **extra: Any
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    sid = session_id or new_id()
    if names is not None:
        evs = [
            {"type": "custom", "ts": now + i, "url": "https://shop.example/p", "name": n} for i, n in enumerate(names)
        ]
    else:
        evs = [{"type": "pageview", "ts": now + i, "url": f"https://shop.example/page/{i}"} for i in range(events)]
    rec = [
        {
            "seq": i,
            "first_ts": now,
            "last_ts": now + 10,
            "count": 2,
            "data": gzip_b64(
                [{"type": 4, "timestamp": now, "data": {}}, {"type": 2, "timestamp": now + 1, "data": {}}]
            ),
        }
        for i in range(chunks)
    ]
    return {"session_id": sid, "anonymous_id": "anon" + sid, "sent_at": now, "events": evs, "recording": rec, **extra}
