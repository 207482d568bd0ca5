"""The traceback gate's log reading (tests/support.py): each traceback found once, expected ones spared."""

from __future__ import annotations

from pathlib import Path

from tests.support import ServerProcess, tracebacks_in, unexpected_tracebacks

TRACEBACK = """Traceback (most recent call last):
  File "/srv/hitmetrix/web/api.py", line 1, in get_chunk
    raise OverflowError("Python int too large to convert to SQLite INTEGER")
OverflowError: Python int too large to convert to SQLite INTEGER
"""


def test_each_traceback_is_found_with_its_exception_line() -> None:
    log = "INFO started\n" + TRACEBACK + "INFO 127.0.0.1 GET /healthz 200\n" + TRACEBACK.replace("Overflow", "Value")
    found = tracebacks_in(log)
    assert len(found) == 2
    assert found[0].startswith("Traceback") and found[0].endswith("OverflowError: Python int too large to convert"
                                                                   " to SQLite INTEGER")
    assert found[1].endswith("ValueError: Python int too large to convert to SQLite INTEGER")
    assert tracebacks_in("INFO started\nINFO 127.0.0.1 GET /healthz 200\n") == []


def test_logs_are_read_once_and_servers_that_expect_tracebacks_are_spared(tmp_path: Path) -> None:
    strict = ServerProcess(tmp_path / "strict" / "data")  # never started: only its log is used
    lenient = ServerProcess(tmp_path / "lenient" / "data", allow_tracebacks=True)
    for server in (strict, lenient):
        server.log_path.parent.mkdir(parents=True)
        server.log_path.write_text("INFO started\n" + TRACEBACK)

    found = unexpected_tracebacks()
    assert len(found) == 1 and str(strict.log_path) in found[0] and "OverflowError" in found[0]
    assert unexpected_tracebacks() == [], "a traceback fails one test, not every test after it"

    with open(strict.log_path, "a") as log:
        log.write("Traceb")  # a line still being written is read when it is complete
    assert unexpected_tracebacks() == []
    with open(strict.log_path, "a") as log:
        log.write("ack (most recent call last):\n  File x\nKeyError: 1\n")
    assert [text.splitlines()[-1] for text in unexpected_tracebacks()] == ["KeyError: 1"]
