"""Scenario building blocks for detector tests: Observations as the engine would make them, and a replayer.

In the style of CrowdSec's scenario tests: a test writes the event sequence (with timestamps) a client
produces, replays it through a fresh detector and asserts the findings — or that there are none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hitmetrix.detect import keys
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.settings import Settings, load_settings

SECRET = b"s" * 32
T0 = 1_790_000_000_000  # a fixed ms timestamp: the detectors only ever look at event time
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari"


def settings(**overrides: Any) -> Settings:
    return load_settings(overrides, environ={})


def at(seconds: float) -> int:
    return T0 + int(seconds * 1000)


def _client(ip: str) -> dict[str, Any]:
    return {"ip_key": keys.ip_key(SECRET, ip), "ip_net": keys.ip_net(ip), "ip_display": ip}


def ip_key(ip: str) -> str:
    return keys.ip_key(SECRET, ip)


def user_key(username: str) -> str:
    return keys.user_key(SECRET, username)


def derived_session(ip: str, ua: str) -> str:
    """The per-day session capture gives a client without the tracker cookie (keyed by address and agent)."""
    return "s-" + keys.user_key(SECRET, ip + "|" + ua)


def request(
    ts_ms: int,
    path: str,
    *,
    ip: str = "203.0.113.7",
    route: str = "",
    status: int = 200,
    method: str = "GET",
    ua: str = BROWSER_UA,
    session: str = "",
    source: str = "middleware",
    **extra: Any,
) -> Observation:
    """A server request; a client with no tracker cookie gets the per-day session capture derives."""
    props = {"method": method, "status": status, "duration_ms": 3.0, "bytes": 1000, **extra.pop("props", {})}
    return Observation(
        project_id=1,
        ts_ms=ts_ms,
        kind="request",
        session_id=session or derived_session(ip, ua),
        source=source,
        user_agent=ua,
        url=path,
        name=route,
        props=props,
        **{**_client(ip), **extra},
    )


def auth(
    ts_ms: int,
    kind: str,
    username: str,
    ok: bool,
    *,
    ip: str = "203.0.113.7",
    ua: str = BROWSER_UA,
    session: str = "",
    source: str = "middleware",
    **extra: Any,
) -> Observation:
    props = {"ok": ok, "user_key": keys.user_key(SECRET, username), "user_display": keys.user_display(username)}
    return Observation(
        project_id=1,
        ts_ms=ts_ms,
        kind="auth",
        session_id=session or derived_session(ip, ua),
        source=source,
        user_agent=ua,
        name=kind,
        props=props,
        **{**_client(ip), **extra},
    )


def signin(ts_ms: int, username: str, ok: bool, **kw: Any) -> Observation:
    return auth(ts_ms, "signin", username, ok, **kw)


def browser(
    ts_ms: int,
    kind: str,
    *,
    session: str,
    ip: str = "203.0.113.7",
    ua: str = BROWSER_UA,
    url: str = "https://site.example/",
    name: str = "",
    props: dict[str, Any] | None = None,
    **extra: Any,
) -> Observation:
    """An event the tracker sent from a browser (pageview, click, signals …)."""
    return Observation(
        project_id=1,
        ts_ms=ts_ms,
        kind=kind,
        session_id=session,
        source="",
        user_agent=ua,
        url=url,
        name=name,
        props=props or {},
        **{**_client(ip), **extra},
    )


def replay(detector: Any, events: Iterable[Observation], *, by_time: bool = True) -> list[Finding]:
    """Every finding the detector raises over the sequence, in order: sorted by time, or as given (``by_time=False``
    replays the order the spool delivers when one client's batches arrive late)."""
    found: list[Finding] = []
    for obs in sorted(events, key=lambda o: o.ts_ms) if by_time else events:
        found += detector.observe(obs)
    return found


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [(f.rule, f.entity_kind, f.reasons) for f in findings]
    return findings[0]
