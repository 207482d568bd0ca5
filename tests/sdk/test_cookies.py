"""Reading the tracker's hm_sid cookie from Cookie headers real sites send."""

from __future__ import annotations

import pytest

from hitmetrix.sdk.cookies import cookie_value, session_id_from_cookie

SID = "Ab3_x-9QzR2kLmN0pQ"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"hm_sid={SID}", SID),
        (f"theme=dark; hm_sid={SID}; csrftoken=abc", SID),
        (f'hm_sid="{SID}"', SID),
        (f"  hm_sid = {SID} ", SID),
        (f'prefs={{"a":"b;c"}}; hm_sid={SID}', SID),  # a JSON cookie before ours does not hide it
        (f"xhm_sid=other123456; hm_sid={SID}", SID),  # a name that merely ends with ours is another cookie
        (f"hm_sid={SID}; hm_sid=second123456", SID),  # the first one wins (the most specific path, by RFC 6265)
        ("hm_sid=", ""),
        ("hm_sid", ""),
        ("theme=dark", ""),
        ("", ""),
        ("hm_sid=short", ""),  # under 8 characters: not a tracker id
        ("hm_sid=" + "a" * 65, ""),  # over 64
        ("hm_sid=has space", ""),
        ("hm_sid=semi%3Bcolon123", ""),
        ("hm_sid=ünïcödé12345", ""),
    ],
)
def test_session_id_from_cookie(header: str, expected: str) -> None:
    assert session_id_from_cookie(header) == expected


def test_cookie_value_of_another_name() -> None:
    assert cookie_value("a=1; my_sid=xyz; b=2", "my_sid") == "xyz"
    assert session_id_from_cookie(f"my_sid={SID}", "my_sid") == SID
