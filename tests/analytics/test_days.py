"""Filter days of a time zone as UTC instants: offsets of +14 h, half hours, 23- and 25-hour days."""

from __future__ import annotations

import datetime as dt

import pytest

from hitmetrix.analytics.days import day_range_ms, day_start_ms

HOUR_MS = 3_600_000


def utc_ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("zone", "day", "starts_at_utc"),
    [
        ("UTC", "2026-12-02", "2026-12-02T00:00"),
        ("Pacific/Kiritimati", "2026-12-02", "2026-12-01T10:00"),
        ("Asia/Kolkata", "2026-12-02", "2026-12-01T18:30"),
        ("America/Los_Angeles", "2026-12-02", "2026-12-02T08:00"),
        ("Europe/Berlin", "2026-03-29", "2026-03-28T23:00"),
        ("Europe/Berlin", "2026-03-30", "2026-03-29T22:00"),
        ("Europe/Berlin", "2026-10-25", "2026-10-24T22:00"),
        ("Europe/Berlin", "2026-10-26", "2026-10-25T23:00"),
        # Clocks there jumped from 00:00 to 01:00: the day began at the jump.
        ("America/Santiago", "2022-09-11", "2022-09-11T04:00"),
    ],
)
def test_a_day_starts_at_its_first_instant_in_the_zone(zone: str, day: str, starts_at_utc: str) -> None:
    assert day_start_ms(dt.date.fromisoformat(day), zone) == utc_ms(starts_at_utc)


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25), ("2026-07-01", 24)])
def test_daylight_saving_days_are_23_or_25_hours_long(day: str, hours: int) -> None:
    start, end = day_range_ms(dt.date.fromisoformat(day), dt.date.fromisoformat(day), "Europe/Berlin")
    assert start is not None and end is not None
    assert end - start == hours * HOUR_MS


def test_an_open_range_has_no_bound_and_an_unknown_zone_is_an_error() -> None:
    assert day_range_ms(None, None, "Europe/Berlin") == (None, None)
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe/"):
        with pytest.raises(ValueError, match="unknown time zone"):
            day_start_ms(dt.date(2026, 12, 2), bad)
