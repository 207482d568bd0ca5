"""The background sender: a bounded queue the request path appends to, and one thread that posts batches.

The request path never waits: ``put`` appends to a deque (or, when ``max_queue`` events are already waiting,
drops the event and counts it). The thread wakes when a batch is full or every ``flush_interval_s``, turns the
queued records into wire events, and POSTs them gzipped to ``/api/v1/server/batch``. A batch keeps its
``batch_id`` across retries, so a retry after a lost answer is stored once. 5xx, 429, 408 and network errors are
retried with exponential back-off (``Retry-After`` honoured) up to ``max_attempts``; any other 4xx means the batch
will never be accepted and it is dropped at once. Every drop is counted by reason, never raised.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable

from hitmetrix.sdk.events import RawAuth, RawRequest, uuid4_text, wire_event
from hitmetrix.sdk.network import AddressResolver
from hitmetrix.sdk.transport import Transport

log = logging.getLogger("hitmetrix.sdk")

BATCH_PATH = "/api/v1/server/batch"
DROP_REASONS = ("queue_full", "refused", "gave_up", "closed", "unencodable")
RETRY_STATUSES = frozenset({408, 425, 429})
YIELD_EVERY_EVENTS = 8
YIELD_S = 0.00005


class Sender:
    """Owns the queue and the sending thread. Thread-safe ``put``; everything else runs on the thread."""

    def __init__(
        self,
        *,
        transport_factory: Callable[[], Transport],
        server_key: str,
        addresses: AddressResolver,
        source: str,
        max_queue: int,
        batch_size: int,
        max_batch_bytes: int,
        flush_interval_s: float,
        max_attempts: int,
        backoff_base_s: float,
        backoff_max_s: float,
        cookie_name: str,
        user_agent: str,
    ) -> None:
        self._transport_factory = transport_factory
        self._headers = {
            "Authorization": f"Bearer {server_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": user_agent,
        }
        self._addresses = addresses
        self._source = source
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval_s = flush_interval_s
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._cookie_name = cookie_name
        self._start()
        # A host that forks workers after making the client (gunicorn --preload) gets a fresh queue and thread
        # in each child: threads do not survive fork.
        ref = weakref.ref(self)

        def restart_in_child() -> None:
            sender = ref()
            if sender is not None:
                sender._start()

        os.register_at_fork(after_in_child=restart_in_child)

    def _start(self) -> None:
        self._queue: collections.deque[RawRequest | RawAuth] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._flush_requested = False
        self._closing = False
        self._close_deadline = float("inf")
        self._in_flight = 0
        self.sent = 0
        self.batches = 0
        self.failed_posts = 0
        self.errors = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="hitmetrix-sender", daemon=True)
        self._thread.start()

    # --- the request path ---------------------------------------------------------------------------------------

    def put(self, raw: RawRequest | RawAuth) -> bool:
        """Queue one record; False (and counted) when the queue is full or the sender is closed. Never blocks."""
        queue = self._queue
        if len(queue) >= self._max_queue or self._closing:
            self._drop("closed" if self._closing else "queue_full", 1)
            return False
        queue.append(raw)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def _drop(self, reason: str, count: int) -> None:
        with self._lock:
            self.dropped[reason] += count

    def count_error(self, what: str, exc: BaseException) -> None:
        """An exception the SDK swallowed so that the host never sees it."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{what}: {exc!r}"[:500]

    # --- control ------------------------------------------------------------------------------------------------

    def queued(self) -> int:
        return len(self._queue) + self._in_flight

    def flush(self, timeout_s: float) -> bool:
        """Send everything queued now; True when the queue emptied within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._flush_requested = True
            self._wake.set()
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout_s: float) -> None:
        """Send what is queued within ``timeout_s``; what is left then is dropped as "closed"."""
        if self._closing:
            return
        self._close_deadline = time.monotonic() + timeout_s
        self._closing = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 0.5)
        left = len(self._queue)
        if left:
            self._queue.clear()
            self._drop("closed", left)

    # --- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        transport = self._transport_factory()
        next_due = time.monotonic() + self._flush_interval_s
        try:
            while True:
                self._wake.wait(max(0.0, next_due - time.monotonic()))
                self._wake.clear()
                now = time.monotonic()
                due = now >= next_due or self._flush_requested or self._closing
                if due:
                    self._flush_requested = False
                    next_due = now + self._flush_interval_s
                while len(self._queue) >= self._batch_size or (due and self._queue):
                    if self._closing and time.monotonic() >= self._close_deadline:
                        break
                    self._send_one_batch(transport)
                with self._idle:
                    self._idle.notify_all()
                if self._closing:
                    return
        except BaseException as exc:  # noqa: BLE001 - the thread must end quietly, the host keeps running
            self.count_error("sender thread", exc)
        finally:
            with contextlib.suppress(Exception):
                transport.close()

    def _take(self) -> tuple[list[str], int]:
        """Up to ``batch_size`` queued records as JSON texts, within ``max_batch_bytes``; returns (texts, taken)."""
        texts: list[str] = []
        size = 0
        queue = self._queue
        random_bytes = os.urandom(16 * min(len(queue), self._batch_size))  # event ids: one system call a batch
        while queue and len(texts) < self._batch_size:
            if len(texts) % YIELD_EVERY_EVENTS == YIELD_EVERY_EVENTS - 1:
                # Encoding holds the GIL; a request thread that wants it would wait up to the interpreter's switch
                # interval (5 ms). Letting go every few events keeps that wait to about a tenth of a millisecond.
                time.sleep(YIELD_S)
            self._in_flight += 1  # before the pop: flush() must never see both the queue and the batch empty
            raw = queue.popleft()
            try:
                random16 = random_bytes[16 * len(texts) : 16 * len(texts) + 16]
                event_id = uuid4_text(random16) if len(random16) == 16 else ""
                event = wire_event(raw, self._addresses, self._cookie_name, event_id)
                text = json.dumps(event, separators=(",", ":"))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the others
                self._in_flight -= 1
                self._drop("unencodable", 1)
                self.count_error("encoding an event", exc)
                continue
            if texts and size + len(text) > self._max_batch_bytes:
                queue.appendleft(raw)
                self._in_flight -= 1
                break
            texts.append(text)
            size += len(text) + 1
        return texts, len(texts)

    def _body(self, batch_id: str, texts: list[str]) -> bytes:
        head = json.dumps({"batch_id": batch_id, "sent_at": int(time.time() * 1000), "source": self._source})
        return gzip.compress(f'{head[:-1]},"events":[{",".join(texts)}]}}'.encode(), compresslevel=5)

    def _send_one_batch(self, transport: Transport) -> None:
        texts, count = self._take()
        if not count:
            return
        batch_id = uuid.uuid4().hex
        try:
            outcome = self._post_with_retries(transport, batch_id, texts)
        except Exception as exc:  # noqa: BLE001
            self.count_error("sending a batch", exc)
            outcome = "gave_up"
        with self._lock:
            self._in_flight = 0
            if outcome == "sent":
                self.sent += count
                self.batches += 1
            else:
                self.dropped[outcome] += count

    def _post_with_retries(self, transport: Transport, batch_id: str, texts: list[str]) -> str:
        """"sent", or the drop reason: "refused" (a 4xx that a retry cannot fix), "gave_up" or "closed"."""
        attempt = 0
        while True:
            attempt += 1
            retry_after_s = 0.0
            try:
                answer = transport.request("POST", BATCH_PATH, self._body(batch_id, texts), self._headers)
            except Exception as exc:  # noqa: BLE001 - OSError, HTTPException, ssl errors: all mean "no answer"
                self.failed_posts += 1
                self.last_error = f"POST {BATCH_PATH}: {exc!r}"[:500]
            else:
                if 200 <= answer.status < 300:
                    return "sent"
                self.failed_posts += 1
                self.last_error = f"POST {BATCH_PATH}: {answer.status} {answer.body[:300]!r}"
                if answer.status < 500 and answer.status not in RETRY_STATUSES:
                    log.warning("hitmetrix refused a batch of %d events: %s", len(texts), self.last_error)
                    return "refused"
                with contextlib.suppress(ValueError):
                    retry_after_s = float(answer.headers.get("retry-after", "0"))
            if attempt >= self._max_attempts:
                return "gave_up"
            delay_s = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
            delay_s = min(max(delay_s, retry_after_s), self._backoff_max_s)
            if self._closing:
                delay_s = min(delay_s, self._close_deadline - time.monotonic())
                if delay_s <= 0:
                    return "closed"
            self._stop.wait(delay_s)
            if self._closing and time.monotonic() >= self._close_deadline:
                return "closed"
