"""The tracker's first-party session cookie (``hm_sid``) read from a Cookie header, without http.cookies.

http.cookies.SimpleCookie gives up on the whole header at the first cookie it dislikes (a JSON value, a stray
quote), and sites carry plenty of those; here each ``name=value`` pair is looked at on its own.
"""

from __future__ import annotations

import re

SESSION_COOKIE = "hm_sid"
# The capture API's client id: what a session id may look like on the wire (anything else is sent as "").
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def cookie_value(header: str, name: str) -> str:
    """The first value of cookie ``name`` in a Cookie header ("" when absent); surrounding quotes are removed."""
    if name not in header:
        return ""
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return ""


def session_id_from_cookie(header: str, name: str = SESSION_COOKIE) -> str:
    """The tracker's session id when the cookie holds a valid one, else ""."""
    value = cookie_value(header, name)
    return value if _SESSION_ID.fullmatch(value) else ""
