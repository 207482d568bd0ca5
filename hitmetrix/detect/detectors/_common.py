"""What the detectors share: request classification, entity labels, evidence and the finding builder.

Every helper here is a pure function of one ``Observation`` or a bounded container from
``hitmetrix.detect.state``, so the detectors stay cheap per event and bounded in memory.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from hitmetrix.detect.detectors.base import MAX_EVIDENCE_SESSIONS, Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import LastSeen, WindowState

T = TypeVar("T")

SERVER_KINDS = frozenset({"request", "auth"})
STATIC_EXTENSIONS = frozenset(
    [
        "js",
        "mjs",
        "css",
        "map",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "ico",
        "webp",
        "avif",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "eot",
        "mp4",
        "webm",
        "mp3",
        "wav",
        "pdf",
        "zip",
    ]
)
# Prefixes that serve data or assets, not pages a person reads (an SPA's XHRs are not page views).
NON_PAGE_PREFIXES = ("/api/", "/static/", "/assets/", "/_next/", "/favicon")
_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def max_entries(settings: Any) -> int:
    """The engine's bound on entities per container (``detect_max_entities``)."""
    return int(getattr(settings, "detect_max_entities", 200_000))


# URLs repeat (a site has few pages; an enumeration's ids are counted once each), and several detectors ask the
# same event's path: the cache turns ~1 µs of string work into one lookup.
@functools.lru_cache(maxsize=16384)
def path_of(url: str) -> str:
    """The path of a stored URL (which may be absolute for browser events), without query or fragment."""
    if "://" in url:
        slash = url.find("/", url.find("://") + 3)
        url = url[slash:] if slash >= 0 else "/"
    end = len(url)
    for mark in ("?", "#"):
        i = url.find(mark)
        if 0 <= i < end:
            end = i
    return url[:end] or "/"


@functools.lru_cache(maxsize=8192)
def user_agent_match(pattern: re.Pattern[str], user_agent: str) -> str:
    """What ``pattern`` finds in the user agent ("" for nothing), cached: clients repeat a few agents many
    times, and an alternation of tool names costs tens of µs per search on a long browser agent."""
    if not user_agent:
        return ""
    match = pattern.search(user_agent)
    return match.group(0) if match else ""


def add_distinct(values: dict[Any, int], value: Any, ts_ms: int, cutoff_ms: int, cap: int) -> int:
    """Record ``value`` at ``ts_ms`` in a dict kept oldest first; how many values are newer than ``cutoff_ms``
    (at most ``cap``: the oldest go first). For per-client records that hold several such sets in one entry."""
    last = values.pop(value, None)
    values[value] = ts_ms if last is None or last < ts_ms else last
    while values:
        oldest = next(iter(values))
        if values[oldest] > cutoff_ms and len(values) <= cap:
            break
        del values[oldest]
    return len(values)


def is_static(path: str) -> bool:
    last = path.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return dot > 0 and last[dot + 1 :].lower() in STATIC_EXTENSIONS


def is_page_request(obs: Observation) -> bool:
    """A server request for a page a person would read: GET/HEAD, not an asset or API call."""
    if obs.kind != "request" or obs.method not in ("GET", "HEAD", ""):
        return False
    return _is_page_path(obs.url)


@functools.lru_cache(maxsize=16384)
def _is_page_path(url: str) -> bool:
    path = path_of(url)
    return not is_static(path) and not path.startswith(NON_PAGE_PREFIXES)


def is_browser_event(obs: Observation) -> bool:
    """An event only a browser running the tracker's JavaScript sends."""
    return obs.source == "" and obs.kind not in SERVER_KINDS


def object_id(obs: Observation) -> str:
    """The id a request's path names (the segment a ``{…}`` route placeholder or a numeric segment stands for)."""
    return _object_id(obs.url, obs.name)


@functools.lru_cache(maxsize=16384)
def _object_id(url: str, name: str) -> str:
    path = path_of(url)
    segments = [s for s in path.split("/") if s]
    template = [s for s in name.split("/") if s] if "{" in name else []
    if len(template) == len(segments):
        for seg, tmpl in zip(segments, template, strict=True):
            if tmpl.startswith("{"):
                return seg
    for seg in reversed(segments):
        if _ID_SEGMENT.match(seg):
            return seg
    return ""


def numeric_id(text: str) -> int | None:
    return int(text) if text and len(text) <= 18 and _NUMBER.fullmatch(text) else None


def ip_entity(obs: Observation) -> tuple[str, str, str]:
    """(kind, value, label) of the client address: its keyed hash, labelled with the stored address."""
    return "ip", obs.ip_key, obs.ip_display or obs.ip_key


def asn_key(obs: Observation) -> str:
    """The network operator: "AS64500", or its organisation name when the database has no number."""
    if obs.asn:
        return f"AS{obs.asn}"
    return obs.as_org


def asn_label(obs: Observation) -> str:
    return f"AS{obs.asn} {obs.as_org}".strip() if obs.asn else obs.as_org


def window_text(window_s: float) -> str:
    """ "10 min", "1 h", "30 s": how a person reads a window in a reason."""
    if window_s >= 3600 and window_s % 3600 == 0:
        return f"{int(window_s // 3600)} h"
    if window_s >= 60 and window_s % 60 == 0:
        return f"{int(window_s // 60)} min"
    return f"{window_s:g} s"


def max_severity(*severities: str) -> str:
    order = ("low", "medium", "high", "critical")
    return max(severities, key=order.index)


class Evidence(WindowState):
    """Per entity, the sessions that show the attack and the moment in each (first hit), at most 20."""

    def __init__(self, max_entries: int) -> None:
        super().__init__(max_entries)
        self._items = 0

    def add(self, key: Hashable, session_id: str, ts_ms: int) -> None:
        if not session_id:
            return
        seen: dict[str, int] | None = self._touch(key)
        if seen is None:
            self._insert(key, {session_id: ts_ms})
            self._items += 1
            return
        if session_id in seen:
            return
        seen[session_id] = ts_ms
        self._items += 1
        if len(seen) > MAX_EVIDENCE_SESSIONS:
            del seen[next(iter(seen))]  # the newest sessions are the better evidence of an ongoing attack
            self._items -= 1

    def sessions(self, key: Hashable) -> tuple[tuple[str, int], ...]:
        seen = self._entries.get(key)
        return tuple(seen.items()) if seen else ()

    def _value_bytes(self) -> int:
        return len(self._entries) * 232 + self._items * 120

    def _value_removed(self, value: Any) -> None:
        self._items -= len(value)

    def _reset_value_bytes(self) -> None:
        self._items = 0


class ScriptSeen(LastSeen[int]):
    """When each session and each address last sent a tracker event (an event only a browser running the
    tracker's JavaScript sends): the "did it ever run JavaScript?" memory of the no-JS checks.

    Every event of a tracker batch shares its session and address, and browser events are most of the traffic,
    so the write is held back while the events keep coming from the same session and address, and made when
    another one's arrives or before anything reads: one LRU update per batch instead of two per event, with the
    same values a write per event would leave.
    """

    def __init__(self, max_entries: int) -> None:
        super().__init__(max_entries, value_bytes=32)
        self._held_project = -1
        self._held_session = ""
        self._held_ip = ""
        self._held_ts = 0

    def saw(self, obs: Observation) -> None:
        """A tracker event: its session and address ran JavaScript at ``obs.ts_ms``."""
        same = obs.session_id == self._held_session and obs.ip_key == self._held_ip
        if same and obs.project_id == self._held_project:
            self._held_ts = obs.ts_ms
            return
        self._write_held()
        self._held_project, self._held_session, self._held_ip = obs.project_id, obs.session_id, obs.ip_key
        self._held_ts = obs.ts_ms

    def ran_js(self, obs: Observation, cutoff_ms: float) -> bool:
        """Did the observation's session or address send a tracker event after ``cutoff_ms``?"""
        self._write_held()
        for key in ((obs.project_id, "s", obs.session_id), (obs.project_id, "i", obs.ip_key)):
            seen = self._entries.get(key)
            if seen is not None and seen > cutoff_ms:
                return True
        return False

    def get(self, key: Hashable) -> int | None:
        self._write_held()
        return super().get(key)

    def __len__(self) -> int:
        self._write_held()
        return super().__len__()

    def bytes_estimate(self) -> int:
        self._write_held()
        return super().bytes_estimate()

    def _write_held(self) -> None:
        if self._held_project < 0:
            return
        project_id, ts_ms = self._held_project, self._held_ts
        self._held_project = -1
        self.put((project_id, "s", self._held_session), ts_ms)
        if self._held_ip:
            self.put((project_id, "i", self._held_ip), ts_ms)
        self._held_session = self._held_ip = ""


class Records(LastSeen[T]):
    """Per-entity records of varying size (one LRU entry holding several sets); memory estimated from a sample."""

    SAMPLE = 200

    def __init__(self, max_entries: int, size_of: Callable[[T], int]) -> None:
        super().__init__(max_entries)
        self._size_of = size_of

    def _value_bytes(self) -> int:
        if not self._entries:
            return 0
        sample = list(itertools.islice(self._entries.values(), self.SAMPLE))
        return int(sum(self._size_of(v) for v in sample) / len(sample) * len(self._entries))


def dict_bytes(values: dict[Any, int] | None, key_bytes: int = 60) -> int:
    """A small dict's table, its items beyond five, and its keys and int values."""
    if values is None:
        return 0
    return (232 if len(values) <= 5 else 232 + 56 * (len(values) - 5)) + len(values) * (key_bytes + 32)


def finding(
    rule: str,
    obs: Observation,
    severity: str,
    entity: tuple[str, str, str],
    reasons: list[str] | tuple[str, ...],
    numbers: Mapping[str, float],
    sessions: tuple[tuple[str, int], ...] = (),
) -> Finding:
    kind, value, label = entity
    if not sessions and obs.session_id:
        sessions = ((obs.session_id, obs.ts_ms),)
    return Finding(
        rule=rule,
        severity=severity,
        entity_kind=kind,
        entity_value=value,
        entity_label=label or value,
        reasons=tuple(reasons),
        ts_ms=obs.ts_ms,
        project_id=obs.project_id,
        numbers=dict(numbers),
        sessions=sessions[-MAX_EVIDENCE_SESSIONS:],
    )
