"""Posts ingest-log batches to ``POST /api/v1/server/batch``, as the SDK does, until they are acknowledged.

Connection errors, 429 and 5xx are retried with growing pauses (the server may be restarting);
an event the server refuses (a 4xx naming ``$.events[i]``) is dropped with its reason and the
rest sent again; a refusal naming no event drops the batch (counted); 401 stops ingestion.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)
_EVENT_FIELD = re.compile(r"^\$\.events\[(\d+)\]")
MAX_PAUSE_S = 10.0


class KeyRefused(Exception):
    """The server does not know the key: nothing can be sent."""


class BatchSender:
    def __init__(
        self,
        server_url: str,
        server_key: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = server_url.rstrip("/") + "/api/v1/server/batch"
        self.client = httpx.Client(
            timeout=timeout_s,
            transport=transport,
            headers={"Authorization": f"Bearer {server_key}", "Content-Encoding": "gzip"},
        )
        self.sleep = sleep
        self.refused_events = 0
        self.refused_batches = 0
        self.retries = 0

    def send(self, batch: dict[str, Any], should_stop: Callable[[], bool] = lambda: False) -> bool:
        """True once the server acknowledged the batch (or refused it for good); False if stopped first."""
        events: list[dict[str, Any]] = list(batch["events"])
        pause_s = 0.25
        while True:
            if not events:
                return True
            body = gzip.compress(json.dumps({**batch, "events": events}).encode(), compresslevel=5)
            try:
                answer = self.client.post(self.url, content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                status, reason = 0, str(exc)
            else:
                status, reason = answer.status_code, answer.text[:300]
                if status == 200:
                    return True
                if status == 401:
                    raise KeyRefused(reason)
                if 400 <= status < 500 and status != 429:
                    field = _error_field(answer)
                    match = _EVENT_FIELD.match(field)
                    if match is not None and int(match.group(1)) < len(events):
                        log.warning("ingest-log: the server refused a line's event (%s): %s", field, reason)
                        self.refused_events += 1
                        del events[int(match.group(1))]
                        continue
                    log.error("ingest-log: the server refused a batch (%s): %s", status, reason)
                    self.refused_batches += 1
                    return True
            if should_stop():
                return False
            self.retries += 1
            log.warning("ingest-log: sending failed (%s %s), retrying in %.1f s", status, reason, pause_s)
            self.sleep(pause_s)
            pause_s = min(pause_s * 2, MAX_PAUSE_S)

    def close(self) -> None:
        self.client.close()


def _error_field(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("field", "")) if isinstance(body, dict) else ""
