"""The decisions poller: keeps the ``DecisionIndex`` current from a thread of its own, like a CrowdSec bouncer.

Every ``poll_s`` it asks ``/api/v1/decisions/stream?since=`` for the decisions made, extended or revoked since its
last answer, following ``more`` pages at once (the first poll, and a full resync every ``resync_s``, ask with
``since=0`` and replace the table). A decision is therefore enforced about ``poll_s`` after it is made.

Decisions a rule made for an address name it only by a keyed hash the host cannot compute. The request path notes
the addresses it sees (a bounded deque append, never a wait; this thread keeps the last ``RECENT_S`` of them), and
while any such decision is active this thread asks the verdict endpoint ``/api/v1/decisions?ip=`` about the most
recently seen addresses it has no fresh answer for, at most ``MAX_LOOKUPS_PER_POLL`` per period; answers are cached
for ``VERDICT_TTL_S``. When the hashed decisions change the cache is emptied and the recent addresses are asked
again, most recent first, so an attacker still sending is found within about one poll period. An address first
seen after the change passes until its answer is in (the next period).
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hitmetrix.sdk.decisions import Decision, DecisionIndex, _ms, parse_decision
from hitmetrix.sdk.network import AddressResolver
from hitmetrix.sdk.transport import Transport

STREAM_PATH = "/api/v1/decisions/stream"
VERDICT_PATH = "/api/v1/decisions"
MAX_PAGES_PER_POLL = 50
MAX_SEEN_ADDRESSES = 8192  # noted by the request path between two polls
MAX_RECENT_ADDRESSES = 10_000
RECENT_S = 120.0
MAX_LOOKUPS_PER_POLL = 200
VERDICT_TTL_S = 60.0
# When an answer carries no cursor of its own the next poll asks from a little before the local clock, so that
# skew between the host and Hitmetrix cannot hide a change (entries come back again; applying one twice is harmless).
SINCE_OVERLAP_MS = 60_000


class DecisionPoller:
    """``index`` is None while no decision applies; ``verdict_for`` serves the request path."""

    def __init__(
        self,
        *,
        transport_factory: Callable[[], Transport],
        server_key: str,
        poll_s: float,
        resync_s: float,
        user_agent: str,
        on_error: Callable[[str, BaseException], None],
        addresses: AddressResolver,
    ) -> None:
        self.index: DecisionIndex | None = None
        # address → (the verdict endpoint's decision or None, monotonic time asked); replaced whole, never edited
        # by another thread than this one
        self.verdicts: dict[str, tuple[Decision | None, float]] = {}
        self.polls = 0
        self.failed_polls = 0
        self.lookups = 0
        self.last_poll_ms = 0
        # (peer, X-Forwarded-For) of requests since the last period, resolved here by ``addresses``
        self._seen: collections.deque[tuple[str, str]] = collections.deque(maxlen=MAX_SEEN_ADDRESSES)
        self._addresses = addresses
        self._recent: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._decisions: dict[str, Decision] = {}
        self._since_ms = 0
        self._last_full_s = 0.0
        self._poll_s = poll_s
        self._resync_s = resync_s
        self._headers = {
            "Authorization": f"Bearer {server_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._transport_factory = transport_factory
        self._on_error = on_error
        self._start()
        # Threads do not survive fork (gunicorn --preload): a worker starts its own poller, keeping the table.
        ref = weakref.ref(self)

        def restart_in_child() -> None:
            poller = ref()
            if poller is not None and not poller._stop.is_set():
                poller._start()

        os.register_at_fork(after_in_child=restart_in_child)

    def _start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hitmetrix-decisions", daemon=True)
        self._thread.start()

    # --- the request path ---------------------------------------------------------------------------------------

    def note(self, peer: str, forwarded_for: str) -> None:
        """Remember that this client sent a request; its address is resolved later, on this poller's thread."""
        self._seen.append((peer, forwarded_for))

    def verdict_for(self, address: str) -> Decision | None:
        """The cached verdict for an address (None when there is none yet)."""
        cached = self.verdicts.get(address)
        return None if cached is None else cached[0]

    # --- the thread ---------------------------------------------------------------------------------------------

    def size(self) -> int:
        index = self.index
        return 0 if index is None else index.size

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        transport = self._transport_factory()
        try:
            while not self._stop.is_set():
                try:
                    self.poll_once(transport)
                    self.look_up_addresses(transport)
                except Exception as exc:  # noqa: BLE001 - keep the last table and try again next period
                    self.failed_polls += 1
                    self._on_error("polling decisions", exc)
                self._stop.wait(self._poll_s)
        finally:
            transport.close()

    def _get(self, transport: Transport, path: str) -> Any:
        answer = transport.request("GET", path, None, self._headers)
        if answer.status != 200:
            raise RuntimeError(f"GET {path.split('?')[0]}: {answer.status} {answer.body[:200]!r}")
        return json.loads(answer.body)

    def poll_once(self, transport: Transport) -> None:
        """Bring the table up to date: one stream answer, and its further pages when it says there are ``more``."""
        full = self._since_ms == 0 or time.monotonic() - self._last_full_s >= self._resync_s
        decisions = {} if full else dict(self._decisions)
        since_ms = 0 if full else self._since_ms
        hashed_before = {k: d for k, d in self._decisions.items() if d.scope == "hashed_ip"}
        for _page in range(MAX_PAGES_PER_POLL):
            asked_ms = int(time.time() * 1000)
            document = self._get(transport, f"{STREAM_PATH}?since={since_ms}")
            entries = document.get("decisions", []) if isinstance(document, dict) else document
            if not isinstance(entries, list):
                raise ValueError("decisions stream: no list of decisions")
            for entry in entries:
                if isinstance(entry, dict):
                    decision_id, decision = parse_decision(entry)
                    if decision is None:
                        decisions.pop(decision_id, None)
                    else:
                        decisions[decision_id] = decision
            since_ms = self._next_since(document, entries, since_ms, asked_ms)
            if not (isinstance(document, dict) and document.get("more") is True):
                break
        now_ms = int(time.time() * 1000)
        decisions = {k: d for k, d in decisions.items() if d.expires_ms is None or d.expires_ms > now_ms}
        self._decisions = decisions
        self._since_ms = since_ms
        if full:
            self._last_full_s = time.monotonic()
        if {k: d for k, d in decisions.items() if d.scope == "hashed_ip"} != hashed_before:
            self.verdicts = {}  # answers given before the change may be wrong now: ask again
        self.index = DecisionIndex(decisions.values()) if decisions else None
        self.polls += 1
        self.last_poll_ms = now_ms

    @staticmethod
    def _next_since(document: Any, entries: list[Any], since_ms: int, asked_ms: int) -> int:
        """The server's cursor when it gives one, else the newest ``updated_ms`` seen (server time, so clock skew
        does not matter), else the local clock less an overlap."""
        cursor = document.get("next_since", document.get("now_ms")) if isinstance(document, dict) else None
        if isinstance(cursor, int | float) and not isinstance(cursor, bool) and cursor > 0:
            return int(cursor)
        updated = [e["updated_ms"] for e in entries if isinstance(e, dict) and isinstance(e.get("updated_ms"), int)]
        if updated:
            return max(since_ms, *updated)
        if entries or since_ms == 0:
            return max(1, asked_ms - SINCE_OVERLAP_MS)
        return since_ms

    def look_up_addresses(self, transport: Transport) -> None:
        """Ask the verdict endpoint about recently seen addresses without a fresh answer (module docstring)."""
        recent = self._recent
        now_s = time.monotonic()
        while self._seen:
            address = self._addresses.resolve(*self._seen.popleft())[1]
            if address:
                recent[address] = now_s
                recent.move_to_end(address)
        while recent and (len(recent) > MAX_RECENT_ADDRESSES or next(iter(recent.values())) < now_s - RECENT_S):
            recent.popitem(last=False)
        index = self.index
        if index is None or not index.hashed:
            if self.verdicts:
                self.verdicts = {}
            return
        verdicts = self.verdicts
        stale = [a for a in reversed(recent) if a not in verdicts or verdicts[a][1] < now_s - VERDICT_TTL_S]
        if not stale:
            return
        fresh = dict(verdicts)
        for address in stale[:MAX_LOOKUPS_PER_POLL]:
            document = self._get(transport, f"{VERDICT_PATH}?ip={quote(address)}")
            fresh[address] = (verdict_decision(address, document), time.monotonic())
            self.lookups += 1
        self.verdicts = fresh


def verdict_decision(address: str, document: Any) -> Decision | None:
    """The verdict endpoint's answer as a decision for the address; None when nothing applies to it."""
    if not isinstance(document, dict):
        raise ValueError("decisions verdict: not an object")
    action = document.get("action")
    decision_id = document.get("decision_id")
    if action not in ("allow", "challenge", "block") or decision_id is None:
        return None
    expires_ms = _ms(document.get("expires_at"))
    return Decision(str(decision_id), "ip", address, str(action), str(document.get("reason", ""))[:200], expires_ms)
