"""Run-wide gate: a traceback in the log of a server the tests started fails the test that caused it.

A server answers a bad request with a 4xx; a traceback in its log is a bug
even when the test's own assertions passed (a 500 the test tolerated, an error
in a background task). Each test is checked when it ends, and each module
again when its module-scoped servers have stopped. A test that provokes a
logged error on purpose says so with ``@pytest.mark.expect_tracebacks("why")``
(or starts its server with ``ServerProcess(..., allow_tracebacks=True)``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_tracebacks(reason): the test makes a server log a traceback on purpose"
    )


def _shortened(traceback: str, max_lines: int = 30) -> str:
    """Where the log is and the innermost frames: the cause is at the end of a traceback."""
    lines = traceback.splitlines()
    if len(lines) <= max_lines:
        return traceback
    return "\n".join([*lines[:2], "  …", *lines[-(max_lines - 2) :]])


def _check_server_logs(node: pytest.Item | pytest.Collector) -> None:
    found = support.unexpected_tracebacks()  # read even when expected, so the next test starts clean
    if found and node.get_closest_marker("expect_tracebacks") is None:
        shown = "\n\n".join(_shortened(text) for text in found[:5])
        pytest.fail(f"{len(found)} unexpected traceback(s) in server logs:\n\n{shown}", pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def _server_logs_clean_at_module_end(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _check_server_logs(request.node)


@pytest.fixture(autouse=True)
def _server_logs_clean_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _check_server_logs(request.node)
