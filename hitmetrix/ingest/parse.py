"""One access-log line → ``LogRecord``, or ``LineError`` saying why not (docs/server-sources.md).

``combined``: the nginx / Apache combined format,
``$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
"$http_user_agent"``, with any fields after it ignored; nginx's ``\\xHH`` escapes are kept as text.
``json``: one object per line (nginx ``escape=json`` log_format, or any program); names below,
nginx variable names accepted as aliases. Times without a zone are UTC.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

MAX_LINE_BYTES = 64 * 1024


class LineError(ValueError):
    """A line that is not a log record of the format; the reason is shown and counted, the line skipped."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    ts_ms: int
    ip: str
    method: str
    path: str
    query: str
    status: int
    bytes: int
    referrer: str
    user_agent: str
    duration_ms: float = 0.0
    location: str = ""  # the redirect target (JSON format only): how a 302 after a sign-in is told apart
    session_id: str = ""
    user_id: str = ""


_COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]{1,64})\] "(?P<request>(?:[^"\\]|\\.){0,16384})" '
    r'(?P<status>\d{3}) (?P<bytes>\d{1,18}|-)(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")
_ESCAPED_QUOTE = re.compile(r"\\([\"\\])")


def parse_line(line: bytes, fmt: str) -> LogRecord:
    if len(line) > MAX_LINE_BYTES:
        raise LineError(f"line longer than {MAX_LINE_BYTES} bytes")
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if not text.strip():
        raise LineError("empty line")
    if fmt == "combined":
        return parse_combined(text)
    if fmt == "json":
        return parse_json(text)
    raise ValueError(f"unknown log format {fmt!r}: combined or json")


def parse_combined(text: str) -> LogRecord:
    match = _COMBINED.match(text)
    if match is None:
        raise LineError("not a combined log line")
    method, path, query = _request(_unescape(match["request"]))
    return LogRecord(
        ts_ms=_clf_time(match["time"]),
        ip=_ip(match["ip"]),
        method=method,
        path=path,
        query=query,
        status=int(match["status"]),
        bytes=0 if match["bytes"] == "-" else int(match["bytes"]),
        referrer=_dash(_unescape(match["referrer"] or "")),
        user_agent=_dash(_unescape(match["agent"] or "")),
    )


def _unescape(value: str) -> str:
    return _ESCAPED_QUOTE.sub(r"\1", value)


def _dash(value: str) -> str:
    return "" if value == "-" else value


def _request(request: str) -> tuple[str, str, str]:
    """(method, path, query) of a request line; a line that is not one (TLS bytes, "-") keeps the method empty."""
    parts = request.split(" ")
    if len(parts) < 2 or not _METHOD.match(parts[0]):
        return "", "", ""
    target = " ".join(parts[1:-1]) if len(parts) > 2 and parts[-1].startswith("HTTP/") else " ".join(parts[1:])
    if target.startswith(("http://", "https://")):  # absolute form (proxies, scanners)
        try:
            split = urlsplit(target)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        except ValueError:
            pass
    path, _, query = target.partition("?")
    return parts[0], path, query


def _clf_time(text: str) -> int:
    try:
        when = dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        raise LineError(f"not a log time: {text[:40]!r}") from None
    return int(when.timestamp() * 1000)


def _ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise LineError(f"not an IP address: {text[:64]!r}") from None
    return str(address)


_json_line = msgspec.json.Decoder(dict[str, Any])
# Our names first, then the nginx variable names a log_format with escape=json would use.
_ALIASES = {
    "time": ("time", "ts", "time_iso8601", "timestamp", "msec"),
    "ip": ("ip", "remote_addr", "client_ip"),
    "method": ("method", "request_method"),
    "path": ("path", "uri", "request_uri"),
    "query": ("query", "args", "query_string"),
    "status": ("status",),
    "bytes": ("bytes", "body_bytes_sent", "bytes_sent"),
    "referrer": ("referrer", "http_referer", "referer"),
    "user_agent": ("user_agent", "http_user_agent"),
    "duration_ms": ("duration_ms",),
    "request_time": ("request_time",),
    "location": ("location", "sent_http_location"),
    "session_id": ("session_id", "cookie_hm_sid"),
    "user_id": ("user_id",),
}


def _field(obj: dict[str, Any], name: str) -> Any:
    for alias in _ALIASES[name]:
        value = obj.get(alias)
        if value not in (None, "", "-"):
            return value
    return None


def parse_json(text: str) -> LogRecord:
    try:
        obj = _json_line.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise LineError("not a JSON object") from None
    except RecursionError:
        raise LineError("JSON nested too deep") from None
    time_value = _field(obj, "time")
    if time_value is None:
        raise LineError("no time field")
    ip = _field(obj, "ip")
    path = str(_field(obj, "path") or "")
    query = str(_field(obj, "query") or "")
    if "?" in path and not query:  # request_uri carries the query
        path, _, query = path.partition("?")
    method = str(_field(obj, "method") or "")
    if method and not _METHOD.match(method):
        method = ""
    duration_ms = _number(_field(obj, "duration_ms"), "duration_ms")
    request_time = _field(obj, "request_time")
    if duration_ms == 0 and request_time is not None:
        duration_ms = _number(request_time, "request_time") * 1000
    return LogRecord(
        ts_ms=_json_time(time_value),
        ip=_ip(str(ip)) if ip is not None else "",
        method=method,
        path=path,
        query=query,
        status=int(_number(_field(obj, "status"), "status")),
        bytes=int(_number(_field(obj, "bytes"), "bytes")),
        referrer=str(_field(obj, "referrer") or ""),
        user_agent=str(_field(obj, "user_agent") or ""),
        duration_ms=duration_ms,
        location=str(_field(obj, "location") or ""),
        session_id=str(_field(obj, "session_id") or ""),
        user_id=str(_field(obj, "user_id") or ""),
    )


def _number(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LineError(f"{name} is not a number: {str(value)[:40]!r}") from None
    if not 0 <= number < 2**53:
        raise LineError(f"{name} out of range: {number}")
    return number


def _json_time(value: Any) -> int:
    """ISO 8601 text (UTC when it has no zone), or a number of seconds (or ms, when that large) since the epoch."""
    if isinstance(value, bool):
        raise LineError("time is not a time")
    if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value)):
        number = float(value)
        return int(number if number > 1e11 else number * 1000)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise LineError(f"not a time: {value[:40]!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return int(when.timestamp() * 1000)
    raise LineError("time is not a time")
