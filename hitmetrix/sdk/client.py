"""``Client``: the SDK's settings, its sender and decisions poller, ``track_auth`` and ``stats``.

One client per process, shared by the middlewares. It never raises into the host on the request path: records
that cannot be queued are counted as dropped, exceptions it swallows are counted in ``stats()["errors"]`` (tests
assert that number stays 0). Configuration mistakes (no server key, a bad trusted-proxy entry) do raise, at start-up.
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Callable
from typing import Any

from hitmetrix import __version__
from hitmetrix.sdk.context import Facts, request_facts
from hitmetrix.sdk.cookies import SESSION_COOKIE, session_id_from_cookie
from hitmetrix.sdk.decisions import Decision
from hitmetrix.sdk.events import AUTH_KINDS, RawAuth, RawRequest
from hitmetrix.sdk.network import AddressResolver, parse_trusted_proxies
from hitmetrix.sdk.poller import DecisionPoller
from hitmetrix.sdk.sender import Sender
from hitmetrix.sdk.transport import HttpTransport, Transport

SDK_USER_AGENT = f"hitmetrix-sdk-python/{__version__}"


class Client:
    """Sends server events to one Hitmetrix project and, with ``enforce=True``, enforces its decisions.

    See docs/sdk.md for every option.
    """

    def __init__(
        self,
        endpoint: str,
        server_key: str,
        trusted_proxies: str | list[str] = "",
        enforce: bool = False,
        poll_s: float = 2.0,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        timeout_s: float = 2.0,
        *,
        max_batch_bytes: int = 768 * 1024,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        resync_s: float = 60.0,
        close_timeout_s: float = 5.0,
        cookie_name: str = SESSION_COOKIE,
        source: str = "middleware",
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        if not server_key:
            raise ValueError("server_key is required (the project's server key, hm_sk_…, from its settings page)")
        if max_queue < 1 or batch_size < 1 or flush_interval_s <= 0 or poll_s <= 0 or timeout_s <= 0:
            raise ValueError("max_queue, batch_size, flush_interval_s, poll_s and timeout_s must be positive")
        if source not in ("middleware", "log"):
            raise ValueError("source must be 'middleware' or 'log'")
        self.trusted = parse_trusted_proxies(trusted_proxies)
        self.addresses = AddressResolver(self.trusted)
        self.cookie_name = cookie_name
        self.close_timeout_s = close_timeout_s
        if transport_factory is None:
            HttpTransport(endpoint, timeout_s)  # a bad endpoint is a start-up error, not a silent drop later
            transport_factory = lambda: HttpTransport(endpoint, timeout_s)  # noqa: E731
        self.blocked = 0
        self.challenged = 0
        self._closed = False
        self._sender = Sender(
            transport_factory=transport_factory,
            server_key=server_key,
            addresses=self.addresses,
            source=source,
            max_queue=max_queue,
            batch_size=min(batch_size, 1000),
            max_batch_bytes=max_batch_bytes,
            flush_interval_s=flush_interval_s,
            max_attempts=max(1, max_attempts),
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            cookie_name=cookie_name,
            user_agent=SDK_USER_AGENT,
        )
        self._poller: DecisionPoller | None = None
        if enforce:
            self._poller = DecisionPoller(
                transport_factory=transport_factory,
                server_key=server_key,
                poll_s=poll_s,
                resync_s=resync_s,
                user_agent=SDK_USER_AGENT,
                on_error=self._sender.count_error,
                addresses=self.addresses,
            )
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            client = ref()
            if client is not None:
                client.close()

        atexit.register(close_at_exit)

    # --- used by the middlewares --------------------------------------------------------------------------------

    def record(self, raw: RawRequest) -> None:
        self._sender.put(raw)

    def count_error(self, what: str, exc: BaseException) -> None:
        self._sender.count_error(what, exc)

    def decision_for(self, facts: Facts, user_of: Callable[[], str]) -> Decision | None:
        """The decision to enforce on this request, or None (also whenever enforcement is off or the table empty)."""
        poller = self._poller
        if poller is None:
            return None
        # Every client is noted (a deque append), so that when a rule blocks an address by its keyed hash the
        # poller already knows which recent addresses to ask the verdict endpoint about.
        poller.note(facts.peer, facts.forwarded_for)
        index = poller.index
        if index is None:
            return None
        address, verdict = None, None
        if index.by_address:
            address, address_text = self.addresses.resolve(facts.peer, facts.forwarded_for)
            if address is not None and index.hashed:
                verdict = poller.verdict_for(address_text)
        session_id = session_id_from_cookie(facts.cookie, self.cookie_name) if index.sessions else ""
        decision = index.match(address, session_id, user_of, int(time.time() * 1000), verdict)
        if decision is not None:
            if decision.action == "block":
                self.blocked += 1
            else:
                self.challenged += 1
        return decision

    # --- the public API -----------------------------------------------------------------------------------------

    def track_auth(
        self,
        kind: str,
        username: str,
        ok: bool,
        request: Any = None,
        user_id: str | int | None = None,
        reason: str = "",
    ) -> bool:
        """Record a sign-in, sign-up, password reset or sign-out. Never blocks, never raises; False when not queued.

        ``request`` is the ASGI scope / WSGI environ / framework request it happened on (for the client's address,
        user agent and session cookie). Never pass a password: the wire format has no field for one.
        """
        try:
            if kind not in AUTH_KINDS:
                raise ValueError(f"track_auth: kind must be one of {', '.join(AUTH_KINDS)}, got {kind!r}")
            facts = request_facts(request)
            raw = RawAuth(
                time.time_ns() // 1_000_000,
                facts.peer,
                facts.forwarded_for,
                facts.user_agent,
                facts.cookie,
                "" if user_id is None else str(user_id),
                kind,
                bool(ok),
                "" if username is None else str(username),
                reason or "",
            )
            return self._sender.put(raw)
        except Exception as exc:  # noqa: BLE001 - the host's sign-in must go on whatever happens here
            self._sender.count_error("track_auth", exc)
            return False

    def stats(self) -> dict[str, Any]:
        """Counters: events queued / sent / dropped (with reasons), failed posts, decisions held, and more."""
        sender = self._sender
        dropped = dict(sender.dropped)
        poller = self._poller
        return {
            "queued": sender.queued(),
            "sent": sender.sent,
            "dropped": sum(dropped.values()),
            "failed_posts": sender.failed_posts,
            "decisions": poller.size() if poller is not None else 0,
            "dropped_by_reason": dropped,
            "batches": sender.batches,
            "errors": sender.errors,
            "blocked": self.blocked,
            "challenged": self.challenged,
            "decision_polls": poller.polls if poller is not None else 0,
            "failed_decision_polls": poller.failed_polls if poller is not None else 0,
            "verdict_lookups": poller.lookups if poller is not None else 0,
            "last_error": sender.last_error,
        }

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send what is queued now; True when everything went out (or was dropped) within ``timeout_s``."""
        return self._sender.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop polling and send what is queued within ``timeout_s`` (default ``close_timeout_s``); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._poller is not None:
            self._poller.close()
        self._sender.close(self.close_timeout_s if timeout_s is None else timeout_s)
