"""Calendar days of a project's time zone as UTC instants: what the date filters' `from` and `to` mean.

A filter day is a day of the project's zone (``Project.time_zone``), not of
UTC: in Pacific/Kiritimati (UTC+14) 2 December starts at 10:00 UTC on
1 December. Each boundary is computed from the date itself, so a day of 23
or 25 hours (daylight saving) and a midnight that does not exist (a zone that
springs forward at 00:00) come out right: a day starts at its first instant.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

DEFAULT_TIME_ZONE = "UTC"


@functools.lru_cache(maxsize=256)
def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; ValueError for a name this machine does not know."""
    try:
        return zoneinfo.ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name[:64]!r}") from None


def day_start_ms(day: dt.date, zone_name: str = DEFAULT_TIME_ZONE) -> int:
    """The first instant of ``day`` in the zone, as milliseconds since the epoch (UTC)."""
    zone = time_zone(zone_name)
    # A midnight the clocks skip (America/Santiago in September) reads with the offset before the
    # jump (fold=0), which is the instant of the jump: the day's first. A midnight that happens twice
    # (fold=0) is the earlier one.
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(midnight.astimezone(dt.UTC).timestamp() * 1000)


def day_range_ms(
    first: dt.date | None, last: dt.date | None, zone_name: str = DEFAULT_TIME_ZONE
) -> tuple[int | None, int | None]:
    """[start, end) in UTC milliseconds of the days ``first`` to ``last`` (inclusive) in the zone; None: open."""
    start = day_start_ms(first, zone_name) if first else None
    end = day_start_ms(last + dt.timedelta(days=1), zone_name) if last else None
    return start, end
