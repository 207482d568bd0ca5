"""HTTP to Hitmetrix with http.client: one kept-alive connection per user (the sender thread, the decisions poller).

A ``Transport`` is what the SDK's threads talk through; tests and hosts may pass their own (an in-memory one, a
proxying one) as ``Client(transport_factory=...)``. An instance is used by one thread only.
"""

from __future__ import annotations

import http.client
from typing import Protocol
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # the decisions stream is the largest answer; a batch answer is tiny


class Answer:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body


class Transport(Protocol):
    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """Send one request; raise OSError or http.client.HTTPException when no answer came."""
        ...

    def close(self) -> None: ...


class HttpTransport:
    """``endpoint`` is the Hitmetrix base URL (http or https, optionally with a path prefix)."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        parts = urlsplit(endpoint.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        reused = self._conn is not None
        try:
            return self._once(method, path, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A kept-alive connection the server closed while idle: that is not an outage, try a fresh one once.
            if not reused:
                raise
            return self._once(method, path, body, headers)

    def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            conn.request(method, self.base_path + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_ANSWER_BYTES + 1)
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            if response.will_close or len(data) > MAX_ANSWER_BYTES:
                self.close()
            return answer
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
