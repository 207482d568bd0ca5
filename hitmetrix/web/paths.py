"""Path parameters: every `{name:int}` in a route is an id of at most 18 digits.

Ids reach SQLite (64-bit signed integers) and ClickHouse; a longer number in a
URL used to overflow there and answer 500. Starlette's own ``int`` convertor
takes any run of digits, so it is replaced here, once, for every route built
after this module is imported (``hitmetrix.web.auth`` imports it, and every
route module imports that): a path whose id does not fit matches no route and
gets the app's ordinary 404, JSON under /api/ and an HTML page elsewhere.
"""

from __future__ import annotations

from starlette.convertors import IntegerConvertor, register_url_convertor

MAX_ID_DIGITS = 18  # 10**18 - 1 < 2**63 - 1, the largest SQLite integer


class BoundedIdConvertor(IntegerConvertor):
    """A non-negative integer that fits a 64-bit signed column."""

    regex = f"[0-9]{{1,{MAX_ID_DIGITS}}}"

    def to_string(self, value: int) -> str:
        if not 0 <= value < 10**MAX_ID_DIGITS:
            raise ValueError(f"{value} is not an id of at most {MAX_ID_DIGITS} digits")
        return str(value)


register_url_convertor("int", BoundedIdConvertor())
