"""Structured logs: with log_format=json every line a log collector reads is one JSON object."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hitmetrix.observe import logs
from tests.support import ServerProcess


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {name: logging.getLogger(name) for name in logs.UVICORN_LOGGERS}
    uvicorn_state = {name: (list(lg.handlers), lg.propagate) for name, lg in loggers.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (saved, propagate) in uvicorn_state.items():
        logging.getLogger(name).handlers[:] = saved
        logging.getLogger(name).propagate = propagate


def test_json_lines_carry_time_level_logger_message_and_exception(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure_logging("info", "json", stream=out)
    log = logging.getLogger("hitmetrix.test")
    log.info("two\nlines, %s and %r", "ünïcode", {"k": 1})
    log.debug("not at info level")
    try:
        raise ValueError("broken\nthing")
    except ValueError:
        log.exception("it failed")
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    first, failure, uvicorn = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines, ünïcode and {'k': 1}"
    assert (first["level"], first["logger"]) == ("info", "hitmetrix.test")
    assert first["time"].endswith("+00:00") and "T" in first["time"] and "exception" not in first
    assert failure["level"] == "error" and failure["message"] == "it failed"
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert failure["exception"].endswith("ValueError: broken\nthing")
    assert (uvicorn["logger"], uvicorn["message"]) == ("uvicorn.error", "from uvicorn")


def test_text_stays_text_and_configuring_twice_does_not_double(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure_logging("warning", "text", stream=out)
    logs.configure_logging("warning", "text", stream=out)
    logging.getLogger("hitmetrix.test").warning("once")
    assert out.getvalue().count("once") == 1
    assert " WARNING hitmetrix.test: once" in out.getvalue()
    with pytest.raises(ValueError, match="log_format"):
        logs.configure_logging("info", "xml")


def test_announcements_follow_the_format(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("error", "text", stream=io.StringIO())
    logs.announce("Hitmetrix:  http://127.0.0.1:8000/")
    assert capsys.readouterr().out == "Hitmetrix:  http://127.0.0.1:8000/\n"
    logs.configure_logging("error", "json", stream=io.StringIO())
    logs.announce("Create the first admin: http://127.0.0.1:8000/setup?token=x")  # above the log level: shown
    line = json.loads(capsys.readouterr().out)
    assert line["message"] == "Create the first admin: http://127.0.0.1:8000/setup?token=x"
    assert line["level"] == "info"


@pytest.mark.integration
def test_a_server_with_json_logs_writes_nothing_else(tmp_path: Path) -> None:
    env = {"HITMETRIX_LOG_FORMAT": "json", "HITMETRIX_LOG_LEVEL": "info"}
    server = ServerProcess(tmp_path / "data", demo=True, env=env).start()
    try:
        assert httpx.get(server.url + "/projects", timeout=10).status_code in (302, 303)
    finally:
        server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, or this fails naming it
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("Create the first admin: http://127.0.0.1:") for m in messages)  # shown at any level
    assert any(m.startswith("Demo site:") for m in messages)
    assert any(r["logger"] == "uvicorn.error" and "Application startup complete" in r["message"] for r in records)
    assert any(r["logger"].startswith("hitmetrix.") for r in records)
