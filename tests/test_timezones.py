"""Time zones: the project setting is checked, and every time is written in its zone, with the zone's name."""

from __future__ import annotations

import datetime as dt

import pytest

from hitmetrix import timezones

# 1 Dec 2026 10:30 UTC: already 2 December in UTC+14.
MOMENT_MS = int(dt.datetime(2026, 12, 1, 10, 30, 15, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", "1 Dec 2026 10:30 (UTC)"),
        ("Pacific/Kiritimati", "2 Dec 2026 00:30 (Pacific/Kiritimati)"),  # UTC+14
        ("America/New_York", "1 Dec 2026 05:30 (America/New_York)"),  # winter: UTC-5
        ("Pacific/Pago_Pago", "30 Nov 2026 23:30 (Pacific/Pago_Pago)"),  # UTC-11: the day before
    ],
)
def test_a_time_is_written_in_its_zone_with_the_zone_named(zone: str, expected: str) -> None:
    assert timezones.format_time(MOMENT_MS, zone) == expected


def test_daylight_saving_moves_the_clock_not_the_label() -> None:
    summer = int(dt.datetime(2026, 7, 1, 10, 30, tzinfo=dt.UTC).timestamp() * 1000)
    winter = int(dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert timezones.format_time(summer, "Europe/Berlin") == "1 Jul 2026 12:30 (Europe/Berlin)"  # CEST, UTC+2
    assert timezones.format_time(winter, "Europe/Berlin") == "1 Jan 2026 11:30 (Europe/Berlin)"  # CET, UTC+1
    # The night the clocks go back, 02:30 happens twice; the two moments an hour apart read alike but differ.
    first = int(dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC).timestamp() * 1000)
    second = first + 3_600_000
    assert timezones.format_time(first, "Europe/Berlin") == timezones.format_time(second, "Europe/Berlin")
    assert timezones.format_time(first, "Europe/Berlin") == "25 Oct 2026 02:30 (Europe/Berlin)"


def test_seconds_on_request() -> None:
    assert timezones.format_time(MOMENT_MS, "Pacific/Kiritimati", seconds=True) == (
        "2 Dec 2026 00:30:15 (Pacific/Kiritimati)"
    )


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_known_zones_are_accepted(name: str) -> None:
    assert timezones.parse_time_zone(f"  {name} ") == name


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "Mars/Olympus", "Europe/Berlin\x00", "../../etc/passwd", "Europe/Berlin; DROP", "x" * 10_000, "utc "],
)
def test_unknown_zones_are_refused_with_a_message(raw: str) -> None:
    with pytest.raises(ValueError, match="time zone") as refused:
        timezones.parse_time_zone(raw)
    assert len(str(refused.value)) < 200  # a long input is not echoed whole


def test_display_never_fails() -> None:
    assert timezones.display(MOMENT_MS, None) == "1 Dec 2026 10:30 (UTC)"
    assert timezones.display(MOMENT_MS, "Mars/Olympus") == "1 Dec 2026 10:30 (UTC)"  # unknown: UTC, named
    assert timezones.display(MOMENT_MS, object()) == "1 Dec 2026 10:30 (UTC)"  # a template's undefined value
    assert timezones.display(dt.datetime(2026, 12, 1, 10, 30), "Pacific/Kiritimati") == (
        "2 Dec 2026 00:30 (Pacific/Kiritimati)"  # a naive datetime from the metadata store is UTC
    )
    assert timezones.display(None, "UTC") == ""
    assert timezones.display(10**30, "UTC") == ""  # past what a datetime can hold


def test_every_offered_zone_parses() -> None:
    names = timezones.time_zone_names()
    assert "Pacific/Kiritimati" in names and "UTC" in names
    assert all(timezones.parse_time_zone(name) == name for name in names)
