"""Server events as the SDK records them on the host's request path, and as they go on the wire.

The request path only copies a few values into a tuple (``RawRequest`` / ``RawAuth``); the sender thread turns
them into wire events (docs/capture-api.md, "Server events"): it resolves the client address by the trusted-proxy
rule, reads the session cookie, makes the event id and cuts every text to the capture API's length limits, so that
one odd request can never make the server refuse a whole batch.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, NamedTuple

from hitmetrix.sdk.cookies import SESSION_COOKIE, session_id_from_cookie
from hitmetrix.sdk.network import AddressResolver

AUTH_KINDS = ("signin", "signup", "reset", "signout")
# Longest texts the capture API accepts per field (characters); longer ones are cut here, never refused there.
MAX_PATH_CHARS = 2048
MAX_QUERY_CHARS = 4096
MAX_ROUTE_CHARS = 512
MAX_USER_AGENT_CHARS = 1024
MAX_REFERRER_CHARS = 2048
MAX_USER_ID_CHARS = 256
MAX_USERNAME_CHARS = 320
MAX_REASON_CHARS = 200
# An HTTP method token (RFC 9110); anything else (a broken client's garbage) is sent as "".
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}")
MAX_DURATION_MS = 86_400_000.0
MAX_RESPONSE_BYTES = 2**53


class RawRequest(NamedTuple):
    """What the middleware copies from one request: cheap, no parsing (that happens on the sender thread)."""

    ts_ms: int
    peer: str
    forwarded_for: str
    user_agent: str
    cookie: str
    user_id: str
    method: str
    path: str
    query: str
    route: str
    status: int
    duration_ms: float
    response_bytes: int
    referrer: str


class RawAuth(NamedTuple):
    """One ``Client.track_auth`` call. The username is kept only until it is sent; the server stores a keyed hash."""

    ts_ms: int
    peer: str
    forwarded_for: str
    user_agent: str
    cookie: str
    user_id: str
    kind: str
    ok: bool
    username: str
    reason: str


def _text(value: object, max_chars: int) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    # Lone surrogates (a WSGI path decoded with surrogateescape) cannot be encoded as JSON UTF-8 on the server.
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:max_chars]


def uuid4_text(random16: bytes) -> str:
    """A canonical version-4 UUID from 16 random bytes (the sender draws them for a whole batch in one call)."""
    h = random16.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def wire_event(
    raw: RawRequest | RawAuth, addresses: AddressResolver, cookie_name: str = SESSION_COOKIE, event_id: str = ""
) -> dict:
    """The ServerEvent the capture API accepts for one recorded request or auth call."""
    event: dict[str, Any] = {
        "type": "request" if isinstance(raw, RawRequest) else "auth",
        "id": event_id or str(uuid.uuid4()),
        "ts": int(raw.ts_ms),
        "ip": addresses.resolve(raw.peer, raw.forwarded_for)[1],
        "user_agent": _text(raw.user_agent, MAX_USER_AGENT_CHARS),
        "session_id": session_id_from_cookie(raw.cookie, cookie_name) if raw.cookie else "",
        "user_id": _text(raw.user_id, MAX_USER_ID_CHARS),
    }
    if isinstance(raw, RawRequest):
        status = int(raw.status)
        event.update(
            method=raw.method if isinstance(raw.method, str) and _METHOD.fullmatch(raw.method) else "",
            path=_text(raw.path, MAX_PATH_CHARS) or "/",
            query=_text(raw.query, MAX_QUERY_CHARS),
            route=_text(raw.route, MAX_ROUTE_CHARS),
            status=status if 100 <= status <= 599 else 500,
            duration_ms=round(min(max(float(raw.duration_ms), 0.0), MAX_DURATION_MS), 3),
            bytes=min(max(int(raw.response_bytes), 0), MAX_RESPONSE_BYTES),
            referrer=_text(raw.referrer, MAX_REFERRER_CHARS),
        )
    else:
        event.update(
            kind=raw.kind,
            ok=bool(raw.ok),
            username=_text(raw.username, MAX_USERNAME_CHARS),
            reason=_text(raw.reason, MAX_REASON_CHARS),
        )
    return event
