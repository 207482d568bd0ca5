"""URL parameters bounded before they reach SQL: every bad value is a BadParameter naming its parameter."""

from __future__ import annotations

import datetime as dt

import pytest

from hitmetrix.analytics import params
from hitmetrix.analytics.params import MAX_DATE, MIN_DATE, BadParameter


def refused(call: object, name: str) -> str:
    assert callable(call)
    with pytest.raises(BadParameter) as info:
        call()
    assert info.value.parameter == name and name in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "1001", "99999999999999999999999", "1e3", "abc", "\u0663", "1_0", "+5",
                                   " ", "5 5", "\x00"])
def test_whole_number_out_of_range_or_malformed(value: str) -> None:
    if value == " ":  # blank is absent
        assert params.whole_number({"limit": value}, "limit", 50, 1, 1000) == 50
        return
    message = refused(lambda: params.whole_number({"limit": value}, "limit", 50, 1, 1000), "limit")
    assert "from 1 to 1000" in message


def test_whole_number_in_range_and_default() -> None:
    assert params.whole_number({}, "limit", 50, 1, 1000) == 50
    assert params.whole_number({"limit": " 1000 "}, "limit", 50, 1, 1000) == 1000
    assert params.whole_number({"limit": "1"}, "limit", 50, 1, 1000) == 1


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "1969-12-31", "2200-01-01"])
def test_day_out_of_range(value: str) -> None:
    assert f"between {MIN_DATE} and {MAX_DATE}" in refused(lambda: params.day({"from": value}, "from"), "from")


@pytest.mark.parametrize("value", ["2026-13-45", "2026-02-30", "yesterday", "'", "{}", "\x00", "x" * 33])
def test_day_malformed(value: str) -> None:
    refused(lambda: params.day({"to": value}, "to"), "to")


def test_day_in_range_and_from_a_timestamp() -> None:
    assert params.day({"from": str(MIN_DATE)}, "from") == MIN_DATE
    assert params.day({"from": str(MAX_DATE)}, "from") == MAX_DATE
    assert params.day({"from": "2026-11-27T10:00:00Z"}, "from") == dt.date(2026, 11, 27)
    assert params.day({}, "from") is None


@pytest.mark.parametrize("value", ["-1", "1e400", "nan", "inf", "-inf", "10000000", "0x10", "1,5", "'"])
def test_seconds_out_of_range_or_malformed(value: str) -> None:
    refused(lambda: params.seconds({"min_duration": value}, "min_duration", 10**7), "min_duration")


def test_seconds_in_range() -> None:
    assert params.seconds({"max_duration": "2.5"}, "max_duration", 10**7) == 2.5
    assert params.seconds({"max_duration": "1e5"}, "max_duration", 10**7) == 100_000
    assert params.seconds({}, "max_duration", 10**7) is None


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("on", True), ("TRUE", True), ("", False), ("0", False),
                                                 ("no", False)])
def test_flag_values(value: str, expected: bool) -> None:
    assert params.flag({"has_errors": value}, "has_errors") is expected


@pytest.mark.parametrize("value", ["maybe", "2", "'", "\x00"])
def test_flag_refuses_anything_else(value: str) -> None:
    refused(lambda: params.flag({"has_errors": value}, "has_errors"), "has_errors")


def test_choice_and_text() -> None:
    assert params.choice({"device": " Mobile "}, "device", ("desktop", "mobile")) == "mobile"
    assert params.choice({}, "device", ("desktop", "mobile")) == ""
    assert "one of desktop, mobile" in refused(
        lambda: params.choice({"device": "toaster" * 10}, "device", ("desktop", "mobile")), "device"
    )
    assert params.text({"user": " o'brien\\{} "}, "user", 20) == "o'brien\\{}", "odd characters are data"
    assert "at most 3 characters" in refused(lambda: params.text({"user": "abcd"}, "user", 3), "user")
