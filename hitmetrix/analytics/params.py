"""Query parameters from a URL, bounded before they reach SQL: each bad one is a `BadParameter` naming it.

Every value an analytics query binds comes from here first, so a value the
store cannot represent (a day past year 2199, a count past 2^63, a number of
seconds that is not a number) is refused with a message a person can act on
instead of failing inside ClickHouse. Text is only capped in length: quotes,
backslashes, braces and NUL are data, bound as parameters, never SQL.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping

# Sessions are stamped with the server's clock: nothing starts before 1970, and
# a day past 2199 is a typo (ClickHouse's DateTime64 ends in 2299).
MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,19}$")
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})


class BadParameter(ValueError):
    """A URL parameter that cannot be used as given; ``str()`` says what is wrong with it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def text(params: Mapping[str, str], name: str, max_chars: int) -> str:
    """The parameter's text, stripped; '' when absent."""
    value = (params.get(name) or "").strip()
    if len(value) > max_chars:
        raise BadParameter(name, f"{name} is too long (at most {max_chars} characters)")
    return value


def whole_number(params: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole number in [minimum, maximum]; default when absent or empty."""
    value = (params.get(name) or "").strip()
    if not value:
        return default
    if not _WHOLE_NUMBER.match(value) or not minimum <= int(value) <= maximum:
        raise BadParameter(name, f"{name} must be a whole number from {minimum} to {maximum}")
    return int(value)


def day(params: Mapping[str, str], name: str) -> dt.date | None:
    """A calendar day (YYYY-MM-DD, or the start of an ISO timestamp) between MIN_DATE and MAX_DATE."""
    value = text(params, name, 32)
    if not value:
        return None
    try:
        parsed = dt.date.fromisoformat(value[:10])
    except ValueError:
        raise BadParameter(name, f"{name} must be a date like 2026-11-27") from None
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise BadParameter(name, f"{name} must be a date between {MIN_DATE} and {MAX_DATE}")
    return parsed


def seconds(params: Mapping[str, str], name: str, maximum_s: float) -> float | None:
    """A duration in seconds in [0, maximum_s); None when absent."""
    value = text(params, name, 16)
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadParameter(name, f"{name} must be a number of seconds") from None
    if not math.isfinite(number) or not 0 <= number < maximum_s:
        raise BadParameter(name, f"{name} must be between 0 and {maximum_s:,.0f} seconds")
    return number


def flag(params: Mapping[str, str], name: str) -> bool:
    """A checkbox: 1/true/on/yes or 0/false/off/no (or absent)."""
    value = text(params, name, 8).lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        raise BadParameter(name, f"{name} must be 1 or 0")
    return False


def choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of allowed (compared in lower case), or '' when absent."""
    value = (params.get(name) or "").strip().lower()
    if value and value not in allowed:
        raise BadParameter(name, f"{name} must be one of {', '.join(allowed)}")
    return value
