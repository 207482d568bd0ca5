"""Sessions: the filterable list, one session's summary and events, its recording.

Every query is built with `ScopedSelect`, so it is scoped to one project;
callers have already checked that the caller may see that project.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import zstandard

from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")
_MS = "toUnixTimestamp64Milli"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURSOR_MS = re.compile(r"^-?[0-9]{1,19}$")
MAX_CURSOR_CHARS = 200  # a real cursor is under 120
MAX_DURATION_S = 10**7
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Session aggregates over session_segments; aliases equal the API's field names.
_SUMMARY_COLUMNS = (
    "session_id",
    f"{_MS}(min(first_ts)) AS started_at",
    f"{_MS}(max(last_ts)) - started_at AS duration_ms",
    "sum(pageviews) AS pageviews",
    "sum(clicks) AS clicks",
    "sum(errors) AS errors",
    "sum(events) AS events",
    "min(entry).2 AS entry_url",
    "anyIf(country, country != '') AS country",
    "any(browser) AS browser",
    "any(os) AS os",
    "any(device_type) AS device_type",
    "max(last_user).2 AS user_id",
)
# Aliases shadow column names (sum(errors) AS errors): make columns win inside expressions.
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"


@dataclass(frozen=True)
class SessionFilters:
    """What the session list can be narrowed by; parsed from and written back to a URL query."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    url: str = ""
    country: str = ""
    device: str = ""
    browser: str = ""
    os: str = ""
    min_duration: float | None = None
    max_duration: float | None = None
    has_errors: bool = False
    user: str = ""

    _QUERY_NAMES: ClassVar[dict[str, str]] = {"date_from": "from", "date_to": "to"}

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> SessionFilters:
        """Parse URL parameters; raise BadParameter with a message a person can act on."""
        country = param.text(params, "country", 64).upper()
        if country and not _COUNTRY.match(country):
            raise BadParameter("country", "country must be a two-letter code like DE")
        filters = cls(
            date_from=param.day(params, "from"),
            date_to=param.day(params, "to"),
            url=param.text(params, "url", 500),
            country=country,
            device=param.choice(params, "device", DEVICE_TYPES),
            browser=param.text(params, "browser", 64),
            os=param.text(params, "os", 64),
            min_duration=param.seconds(params, "min_duration", MAX_DURATION_S),
            max_duration=param.seconds(params, "max_duration", MAX_DURATION_S),
            has_errors=param.flag(params, "has_errors"),
            user=param.text(params, "user", 256),
        )
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            raise BadParameter("from", "from must not be after to")
        return filters

    def to_query(self) -> dict[str, str]:
        """The non-empty filters as URL parameters (inverse of from_query)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, "", False):
                continue
            name = self._QUERY_NAMES.get(f.name, f.name)
            if isinstance(value, bool):
                out[name] = "1"
            elif isinstance(value, float):
                out[name] = f"{value:g}"
            else:
                out[name] = str(value)
        return out


def encode_cursor(started_at_ms: int, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at_ms}:{session_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (started_at ms, session id) a page continues after; BadParameter for anything else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, sid = raw.partition(":")
        if not _CURSOR_MS.match(ts) or not _SESSION_ID.match(sid) or not -(2**63) <= int(ts) < 2**63:
            raise ValueError
        return int(ts), sid
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", "cursor is not valid (copy the link again)") from None


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def sessions_query(project_id: int, filters: SessionFilters, cursor: str | None, limit: int) -> ScopedSelect:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadParameter("limit", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    q = ScopedSelect(project_id).select(*_SUMMARY_COLUMNS).from_("session_segments", final=True)
    q.group_by.append("session_id")
    if filters.date_from:
        q.where(f"last_ts >= fromUnixTimestamp64Milli({q.bind(_day_ms(filters.date_from), 'Int64')}, 'UTC')")
        q.having(f"started_at >= {q.bind(_day_ms(filters.date_from), 'Int64')}")
    if filters.date_to:
        end_ms = _day_ms(filters.date_to + dt.timedelta(days=1))
        q.where(f"first_ts < fromUnixTimestamp64Milli({q.bind(end_ms, 'Int64')}, 'UTC')")
        q.having(f"started_at < {q.bind(end_ms, 'Int64')}")
    if filters.url:
        q.having(
            f"arrayExists(u -> positionCaseInsensitive(u, {q.bind(filters.url, 'String')}) > 0, "
            "groupUniqArrayArray(urls))"
        )
    for column, value in (
        ("country", filters.country),
        ("device_type", filters.device),
        ("browser", filters.browser),
        ("os", filters.os),
    ):
        if value:
            q.having(f"anyIf({column}, {column} != '') = {q.bind(value, 'String')}")
    if filters.min_duration is not None:
        q.having(f"duration_ms >= {q.bind(int(filters.min_duration * 1000), 'Int64')}")
    if filters.max_duration is not None:
        q.having(f"duration_ms <= {q.bind(int(filters.max_duration * 1000), 'Int64')}")
    if filters.has_errors:
        q.having("sum(errors) > 0")
    if filters.user:
        q.having(f"max(last_user).2 = {q.bind(filters.user, 'String')}")
    if cursor:
        ts, sid = decode_cursor(cursor)
        q.having(f"(started_at, session_id) < ({q.bind(ts, 'Int64')}, {q.bind(sid, 'String')})")
    q.order_by += ["started_at DESC", "session_id DESC"]
    q.limit = limit + 1
    return q


def list_sessions(
    store: EventStore,
    project_id: int,
    filters: SessionFilters,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest sessions first, one summary row each, and the cursor of the next page (or None)."""
    q = sessions_query(project_id, filters, cursor, limit)
    rows = store.query(q.sql() + "\n" + _SETTINGS, q.params)
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(int(last["started_at"]), last["session_id"])


def session_summary(store: EventStore, project_id: int, session_id: str) -> dict[str, Any] | None:
    q = ScopedSelect(project_id).select(*_SUMMARY_COLUMNS).from_("session_segments", final=True)
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.group_by.append("session_id")
    rows = store.query(q.sql() + "\n" + _SETTINGS, q.params)
    return rows[0] if rows else None


def filter_options(store: EventStore, project_id: int) -> dict[str, list[str]]:
    """Values seen in the project, to offer in the list's filter menus."""
    q = (
        ScopedSelect(project_id)
        .from_("session_segments")
        .select(
            "arraySort(groupUniqArrayIf(200)(country, country != '')) AS countries",
            "arraySort(groupUniqArrayIf(200)(browser, browser != '')) AS browsers",
            "arraySort(groupUniqArrayIf(200)(os, os != '')) AS oses",
            "arraySort(groupUniqArrayIf(20)(device_type, device_type != '')) AS device_types",
        )
    )
    rows = store.query(q.sql(), q.params)
    return rows[0] if rows else {"countries": [], "browsers": [], "oses": [], "device_types": []}


def session_events(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """Every event of one session in time order."""
    q = (
        ScopedSelect(project_id)
        .from_("events")
        .select(
            "toString(event_id) AS event_id",
            "type",
            "name",
            f"{_MS}(ts) AS ts",
            f"{_MS}(client_ts) AS client_ts",
            "url",
            "title",
            "referrer",
            "selector",
            "tag",
            "text",
            "x",
            "y",
            "viewport_w",
            "viewport_h",
            "props",
            "user_id",
            "anonymous_id",
            "ip",
            "country",
            "asn",
            "as_org",
            "browser",
            "browser_version",
            "os",
            "os_version",
            "device_type",
        )
    )
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by += ["ts", "event_id"]
    return store.query(q.sql(), q.params)


def recording_chunks(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """The session's recording chunk index, in order (client retries collapsed)."""
    q = (
        ScopedSelect(project_id)
        .from_("recordings", final=True)
        .select(
            "seq",
            f"{_MS}(first_ts) AS first_ts",
            f"{_MS}(last_ts) AS last_ts",
            "event_count",
            "bytes",
            "raw_bytes",
            "path",
        )
    )
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by.append("seq")
    return store.query(q.sql(), q.params)


def chunk_json(blobs: BlobStore, chunk: Mapping[str, Any]) -> bytes:
    """One chunk's rrweb events as a JSON array."""
    return zstandard.ZstdDecompressor().decompress(blobs.get(chunk["path"]))


def iter_recording_json(blobs: BlobStore, chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    """The whole recording as one JSON array of rrweb events, streamed chunk by chunk."""
    yield b"["
    first = True
    for chunk in chunks:
        inner = chunk_json(blobs, chunk).strip()[1:-1].strip()  # each chunk is itself a JSON array
        if not inner:
            continue
        if not first:
            yield b","
        yield inner
        first = False
    yield b"]"
