"""A corpus of hostile capture requests, shared by the in-process route tests and the real-server test.

Each case is one line: what it is, the body, the headers, and the status it must get. Never a 500.
"""

from __future__ import annotations

import gzip

from tests.capture.builders import NOW_MS, batch_dict, body_bytes


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw)


GOOD = body_bytes(batch_dict(events=1))
DEEP = b"[" * 100_000 + b"]" * 100_000
AS_JSON = {"Content-Type": "application/json"}
AS_GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
TS = str(NOW_MS - 100).encode()  # the event's ts in GOOD
SENT_AT = str(NOW_MS).encode() + b","  # its sent_at

# (what, body, headers, expected status): each a hostile request, answered with a message and never 500.
HOSTILE: list[tuple[str, bytes, dict[str, str], int]] = [
    ("empty body", b"", AS_JSON, 400),
    ("whitespace body", b" \n\t ", AS_JSON, 400),
    ("BOM before JSON", b"\xef\xbb\xbf" + GOOD, AS_JSON, 400),
    ("raw NUL byte in a string", GOOD.replace(b"/p/0", b"/p/\x00"), AS_JSON, 400),
    ("lone surrogate escape", GOOD.replace(b"/p/0", b"/p/\\ud800"), AS_JSON, 400),
    ("lone surrogate as UTF-8 bytes", GOOD.replace(b"/p/0", b"/p/\xed\xa0\x80"), AS_JSON, 400),
    ("invalid UTF-8 in props", GOOD.replace(b'"load"', b'"\xff\xfe"'), AS_JSON, 400),
    ("integer past 2^63 as ts", GOOD.replace(TS, b"9223372036854775808"), AS_JSON, 400),
    ("integer past 2^64 as x", GOOD.replace(b'"type"', b'"x": 18446744073709551616, "type"'), AS_JSON, 400),
    ("float as ts", GOOD.replace(TS, TS + b".5"), AS_JSON, 400),
    ("float as x", GOOD.replace(b'"type"', b'"x": 1.0, "type"'), AS_JSON, 400),
    ("exponent as sent_at", GOOD.replace(SENT_AT, b"1.76e12,"), AS_JSON, 400),
    ("string as sent_at", GOOD.replace(SENT_AT, b'"now",'), AS_JSON, 400),
    ("deep unknown field", GOOD[:-1] + b', "zz": ' + DEEP + b"}", AS_JSON, 400),
    ("deep props", GOOD.replace(b'"load"', DEEP), AS_JSON, 400),
    ("deep top level", DEEP, AS_JSON, 400),
    ("array at top level", b"[" + GOOD + b"]", AS_JSON, 400),
    ("events not a list", GOOD.replace(b'"events": [', b'"events": {"a": [').replace(b"}]", b"}]}", 1), AS_JSON, 400),
    ("NUL in session_id", GOOD.replace(b"sess_0001", b"sess\\u00000001"), AS_JSON, 400),
    ("key not a string", GOOD[:-1] + b', "key": {"k": 1}}', AS_JSON, 400),
    ("gzip with trailing garbage", _gz(GOOD) + b"garbage", AS_GZIP, 400),
    ("gzip truncated", _gz(GOOD)[:-6], AS_GZIP, 400),
    ("gzip of a deep body", _gz(DEEP), AS_GZIP, 400),
    ("gzip bomb", _gz(b" " * (40 << 20)), AS_GZIP, 413),
    ("gzip header, not gzip", b"\x1f\x8b" + b"\xff" * 50, AS_GZIP, 400),
    ("plain body declared gzip", GOOD, AS_GZIP, 400),
    ("two content encodings", _gz(_gz(GOOD)), {**AS_GZIP, "Content-Encoding": "gzip, gzip"}, 415),
    ("brotli", GOOD, {**AS_JSON, "Content-Encoding": "br"}, 415),
    ("multipart form", GOOD, {"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ("form urlencoded", b"session_id=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("utf-16 body", GOOD.decode().encode("utf-16"), {"Content-Type": "application/json; charset=utf-16"}, 400),
    (
        "chunk data not base64",
        GOOD[:-1] + b', "recording": [{"seq": 0, "first_ts": 1, "last_ts": 1, "count": 1, "data": "%%%"}]}',
        AS_JSON,
        400,
    ),
    # Well-formed oddities are accepted as what they are:
    ("escaped NUL in a URL", GOOD.replace(b"/p/0", b"/p/\\u0000"), AS_JSON, 200),
    ("duplicated key: the last one wins", GOOD.replace(b'"type"', b'"type": "click", "type"'), AS_JSON, 200),
    ("gzip of two members", _gz(GOOD[:20]) + _gz(GOOD[20:]), AS_GZIP, 200),
    ("odd content-type parameters", GOOD, {"Content-Type": 'application/json; charset="x"; q=1'}, 200),
    ("huge integer inside props", GOOD.replace(b'"load"', b"1" + b"0" * 5000), AS_JSON, 200),
]
