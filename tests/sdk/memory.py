"""An in-memory Transport for the SDK's tests: records every request, answers from a script (or 200)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

from hitmetrix.sdk.transport import Answer

Responder = Callable[[str, str, bytes | None, dict[str, str]], Answer]


def ok(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    return Answer(200, {"content-type": "application/json"}, b'{"ok":true}')


class MemoryTransport:
    """Shared by every thread of a client (each thread makes "its own" by calling the factory)."""

    def __init__(self, responder: Responder = ok) -> None:
        self.responder = responder
        self.requests: list[tuple[str, str, bytes | None, dict[str, str]]] = []
        self.lock = threading.Lock()

    def factory(self) -> MemoryTransport:
        return self

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        with self.lock:
            self.requests.append((method, path, body, dict(headers)))
        return self.responder(method, path, body, headers)

    def close(self) -> None:
        pass

    def posts(self) -> list[tuple[str, bytes, dict[str, str]]]:
        with self.lock:
            return [(path, body or b"", headers) for method, path, body, headers in self.requests if method == "POST"]

    def batches(self) -> list[dict[str, Any]]:
        """Every POSTed batch body, decompressed and decoded (retries included)."""
        return [json.loads(gzip.decompress(body)) for _path, body, _headers in self.posts()]

    def events(self) -> list[dict[str, Any]]:
        """Events of the distinct batches posted (a retried batch counted once)."""
        seen: dict[str, list[dict[str, Any]]] = {}
        for batch in self.batches():
            seen.setdefault(batch["batch_id"], batch["events"])
        return [event for events in seen.values() for event in events]
