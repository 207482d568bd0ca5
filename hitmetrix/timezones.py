"""Time zones: checking a project's zone setting and writing a time so that it always says its zone.

A project has one IANA time zone (``Project.time_zone``, default ``UTC``). The
dashboard shows every time in it, followed by its name — "2 Dec 2026 00:30
(Pacific/Kiritimati)" — so that what a person reads matches what the date
filters (interpreted in the same zone) select. The dashboard's JavaScript
writes times the same way (``dashboard/src/format.ts``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

DEFAULT_TIME_ZONE = "UTC"
MAX_TIME_ZONE_CHARS = 64
# IANA names: "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC".
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """Every zone this machine knows (from the tzdata package), sorted: the settings form offers these."""
    return tuple(sorted(zoneinfo.available_timezones()))


def parse_time_zone(raw: str) -> str:
    """A known IANA zone name, as given (stripped); ValueError with a message a person can act on."""
    name = raw.strip()
    if not name:
        raise ValueError("a time zone is needed, e.g. Europe/Berlin or UTC")
    if len(name) > MAX_TIME_ZONE_CHARS or not _NAME.match(name) or name not in time_zone_names():
        shown = name if len(name) <= MAX_TIME_ZONE_CHARS else name[:MAX_TIME_ZONE_CHARS] + "…"
        raise ValueError(f"unknown time zone {shown!r}: use an IANA name such as Europe/Berlin or UTC")
    return name


@functools.lru_cache(maxsize=256)
def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone named ``name``; UTC for an empty or unknown name (a display must never fail)."""
    try:
        return zoneinfo.ZoneInfo(parse_time_zone(name or DEFAULT_TIME_ZONE))
    except ValueError:
        return zoneinfo.ZoneInfo(DEFAULT_TIME_ZONE)


def zone_name(name: str | None) -> str:
    """The name ``zone(name)`` stands for: the label shown next to a time."""
    return str(zone(name).key)


def format_time(unix_ms: int | float | None, time_zone: str | None, *, seconds: bool = False) -> str:
    """``2 Dec 2026 00:30 (Pacific/Kiritimati)``: the moment in the zone, with the zone's name; '' for no time."""
    if unix_ms is None:
        return ""
    tz = zone(time_zone)
    try:
        moment = dt.datetime.fromtimestamp(float(unix_ms) / 1000, tz)
    except (OverflowError, OSError, ValueError):
        return ""
    clock = f"{moment:%H:%M:%S}" if seconds else f"{moment:%H:%M}"
    return f"{moment.day} {moment:%b %Y} {clock} ({tz.key})"


def format_datetime(value: dt.datetime | None, time_zone: str | None, *, seconds: bool = False) -> str:
    """``format_time`` for a datetime (a naive one is taken as UTC, as the metadata store keeps them)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_time(value.timestamp() * 1000, time_zone, seconds=seconds)


def display(value: object, time_zone: object = None, *, seconds: bool = False) -> str:
    """The templates' ``zoned`` filter: ms since the epoch or a datetime, in ``time_zone`` (a name, else UTC)."""
    name = time_zone if isinstance(time_zone, str) else None
    if isinstance(value, dt.datetime):
        return format_datetime(value, name, seconds=seconds)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_time(value, name, seconds=seconds)
    return ""
