"""Log lines as plain text or as one JSON object each (setting ``log_format``), for the server and its CLI.

A JSON line carries ``time`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger``, ``message`` and, when the record has one, ``exception`` (the whole
traceback as text) — one line per record however many lines the message or
the traceback hold, so a log collector never splits a record.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that uvicorn configures for itself unless told not to; in JSON they must reach our handler.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_HANDLER_NAME = "hitmetrix"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # Anything unserialisable (an object passed as an argument) is shown as its repr, never an error.
        return json.dumps(line, ensure_ascii=False, default=repr)


def configure_logging(level: str = "info", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send every log record (the server's, uvicorn's) to ``stream`` (stderr) in ``log_format``.

    Replaces a handler this function installed before, so calling it twice does not double lines.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic reports every plugin and migration step at INFO; hitmetrix.store.migrations says what changed.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    if log_format == "json":
        for name in UVICORN_LOGGERS:
            uvicorn_logger = logging.getLogger(name)
            uvicorn_logger.handlers.clear()
            uvicorn_logger.propagate = True


def uses_json() -> bool:
    """Whether ``configure_logging`` set up JSON lines."""
    return any(
        h.get_name() == _HANDLER_NAME and isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers
    )


def announce(message: str, logger: str = "hitmetrix") -> None:
    """A line for the person starting the server (its address, the first-admin link) on standard output.

    Printed as it is, or as an ``info`` JSON line when logs are JSON, whatever the log level: a
    collector reading standard output sees only JSON, and the setup link is never filtered out.
    """
    if not uses_json():
        print(message, flush=True)
        return
    record = logging.LogRecord(logger, logging.INFO, __file__, 0, message, None, None)
    print(JsonFormatter().format(record), flush=True)
