"""hitmetrix/ingest/rules.py: sign-in outcomes per route, the defaults and a project's own rules."""

from __future__ import annotations

import dataclasses

import pytest

from hitmetrix.ingest.parse import LogRecord
from hitmetrix.ingest.rules import DEFAULT_RULES, infer_auth, parse_rules

BASE = LogRecord(ts_ms=0, ip="1.2.3.4", method="POST", path="/login", query="", status=200, bytes=100,
                 referrer="", user_agent="")


def line(**fields: object) -> LogRecord:
    return dataclasses.replace(BASE, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (line(status=401), ("signin", False)),
        (line(status=403), ("signin", False)),
        (line(status=429), ("signin", False)),
        (line(status=302, location="/login?error=1"), ("signin", False)),
        (line(status=302, location="https://site.example/login/"), ("signin", False)),
        (line(status=302, location="/home"), ("signin", True)),
        (line(status=302), ("signin", True)),  # combined logs: target unknown
        (line(status=200), ("signin", True)),
        (line(path="/wp-login.php", status=200), ("signin", False)),
        (line(path="/wp-login.php", status=302, location="/wp-admin/"), ("signin", True)),
        (line(path="/api/session", status=201), ("signin", True)),
        (line(path="/signup", status=400), ("signup", False)),
        (line(path="/password-reset", status=200), ("reset", True)),
    ],
)
def test_default_rules(record: LogRecord, expected: tuple[str, bool]) -> None:
    outcome = infer_auth(DEFAULT_RULES, record)
    assert outcome is not None and (outcome.kind, outcome.ok) == expected


@pytest.mark.parametrize("record", [line(method="GET"), line(path="/profiles/17"), line(status=500),
                                    line(path="/loginx")])
def test_lines_that_are_no_sign_in(record: LogRecord) -> None:
    assert infer_auth(DEFAULT_RULES, record) is None


def test_a_project_rule_for_a_site_that_answers_failure_with_200() -> None:
    rules = parse_rules('[{"path": "^/account/enter$", "failed_bytes": [4000, 4200]},'
                        ' {"path": "^/auth$", "failed_redirect": "[?&]failed", "method": "*"}]')
    assert infer_auth(rules, line(path="/account/enter", bytes=4100)).ok is False  # type: ignore[union-attr]
    assert infer_auth(rules, line(path="/account/enter", bytes=900)).ok is True  # type: ignore[union-attr]
    assert infer_auth(rules, line(path="/auth", method="GET", status=302, location="/x?failed=1")).ok is False  # type: ignore[union-attr]
    assert infer_auth(rules, line(path="/login", status=401)) is None  # the project's rules replace the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"path": "x"}', "JSON array"),
        ('[{"path": "("}]', "not a regular expression"),
        ('[{"path": "x", "kind": "hack"}]', "kind"),
        ('[{"path": "x", "failed_bytes": [1]}]', "failed_bytes"),
        ('[{"path": "x", "password": "x"}]', "unknown field"),
        ('[{"kind": "signin"}]', "path"),
    ],
)
def test_bad_rules_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(text)
