"""Sign-in outcomes inferred from access-log lines, per route (docs/server-sources.md, "Auth rules").

Many sites answer a failed sign-in with 200 and an error text, so the status alone does not tell.
A project sets rules (``Project.auth_rules``, a JSON array; empty: ``DEFAULT_RULES``), each naming
the routes it covers and how a failure looks. The first rule whose ``path`` (a regular expression,
searched in the path) and ``method`` match a line decides; a line no rule matches is no auth event.
For a matching line:

- a status in ``failed_status`` (default 401, 403, 429 and other 4xx) → failed;
- a 5xx → no auth event (the site broke, the visitor did not fail);
- a redirect (301, 302, 303, 307, 308): to a target matching ``failed_redirect`` → failed; with no
  ``failed_redirect``, back to the same path (the login page again) → failed; elsewhere → ok; an
  unknown target (combined logs carry none) → ``redirect_unknown`` (default ok);
- a 200: failed when ``failed_on_200`` is true, or when the response size lies in ``failed_bytes``
  ``[min, max]``; else ok.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hitmetrix.ingest.parse import LogRecord

KINDS = ("signin", "signup", "reset", "signout")
REDIRECTS = frozenset((301, 302, 303, 307, 308))
MAX_RULES = 50


@dataclass(frozen=True)
class AuthRule:
    path: re.Pattern[str]
    kind: str = "signin"
    method: str = "POST"  # "" or "*": any
    failed_status: frozenset[int] = frozenset()  # empty: every 4xx
    failed_redirect: re.Pattern[str] | None = None
    redirect_unknown: bool = True  # ok?
    failed_on_200: bool = False
    failed_bytes: tuple[int, int] | None = None


@dataclass(frozen=True)
class AuthOutcome:
    kind: str
    ok: bool
    reason: str


DEFAULT_RULES_JSON: list[dict[str, Any]] = [
    # WordPress answers a failed sign-in with the form again (200), a good one with a redirect.
    {"path": r"/wp-login\.php$", "kind": "signin", "failed_on_200": True},
    {"path": r"(^|/)(login|log-in|signin|sign-in|session|sessions)/?$", "kind": "signin"},
    {"path": r"(^|/)(signup|sign-up|register|registration)/?$", "kind": "signup"},
    {"path": r"(^|/)(password[-_/]?reset|reset[-_/]?password|forgot[-_/]?password)/?$", "kind": "reset"},
]


def parse_rules(text: str) -> list[AuthRule]:
    """The rules in ``text`` (a JSON array; "" → the defaults), or ValueError naming what is wrong."""
    if not text.strip():
        return DEFAULT_RULES
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"auth_rules is not JSON: {exc}") from None
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise ValueError(f"auth_rules must be a JSON array of at most {MAX_RULES} rules")
    return [_rule(item, index) for index, item in enumerate(raw)]


_FIELDS = {
    "path", "kind", "method", "failed_status", "failed_redirect", "redirect_unknown", "failed_on_200", "failed_bytes"
}


def _rule(item: Any, index: int) -> AuthRule:
    where = f"auth_rules[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    path = item.get("path")
    if not isinstance(path, str) or not path or len(path) > 300:
        raise ValueError(f"{where}.path must be a regular expression of 1-300 characters")
    kind = item.get("kind", "signin")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}")
    method = item.get("method", "POST")
    if not isinstance(method, str) or len(method) > 16:
        raise ValueError(f"{where}.method must be an HTTP method, or * for any")
    statuses = item.get("failed_status", [])
    if not isinstance(statuses, list) or not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
        raise ValueError(f"{where}.failed_status must be a list of HTTP statuses")
    size = item.get("failed_bytes")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) and n >= 0 for n in size)
    ):
        raise ValueError(f"{where}.failed_bytes must be [min, max] response bytes")
    for flag in ("redirect_unknown", "failed_on_200"):
        if not isinstance(item.get(flag, False), bool):
            raise ValueError(f"{where}.{flag} must be true or false")
    redirect = item.get("failed_redirect")
    if redirect is not None and (not isinstance(redirect, str) or len(redirect) > 300):
        raise ValueError(f"{where}.failed_redirect must be a regular expression of at most 300 characters")
    try:
        return AuthRule(
            path=re.compile(path),
            kind=kind,
            method="" if method == "*" else method.upper(),
            failed_status=frozenset(statuses),
            failed_redirect=re.compile(redirect) if redirect else None,
            redirect_unknown=item.get("redirect_unknown", True),
            failed_on_200=item.get("failed_on_200", False),
            failed_bytes=(size[0], size[1]) if size is not None else None,
        )
    except re.error as exc:
        raise ValueError(f"{where}: not a regular expression: {exc}") from None


DEFAULT_RULES: list[AuthRule] = [_rule(item, index) for index, item in enumerate(DEFAULT_RULES_JSON)]


def infer_auth(rules: list[AuthRule], record: LogRecord) -> AuthOutcome | None:
    """The sign-in outcome a line shows under the first matching rule, or None (not an auth line)."""
    for rule in rules:
        if rule.method and record.method.upper() != rule.method:
            continue
        if not rule.path.search(record.path):
            continue
        return _outcome(rule, record)
    return None


def _outcome(rule: AuthRule, record: LogRecord) -> AuthOutcome | None:
    status = record.status
    if status >= 500 or status < 200:
        return None
    if status in rule.failed_status:
        return AuthOutcome(rule.kind, False, f"status {status}")
    if status in REDIRECTS:
        if not record.location:
            return AuthOutcome(rule.kind, rule.redirect_unknown, f"redirect {status}, target not logged")
        target = record.location
        if rule.failed_redirect is not None:
            failed = rule.failed_redirect.search(target) is not None
        else:
            failed = _same_path(target, record.path)
        return AuthOutcome(rule.kind, not failed, f"redirect {status} to {'the same page' if failed else 'elsewhere'}")
    if 400 <= status < 500:
        return AuthOutcome(rule.kind, False, f"status {status}")
    if rule.failed_on_200:
        return AuthOutcome(rule.kind, False, f"status {status} (the rule says it means failure)")
    if rule.failed_bytes is not None and rule.failed_bytes[0] <= record.bytes <= rule.failed_bytes[1]:
        return AuthOutcome(rule.kind, False, f"response of {record.bytes} bytes, the size of a failure page")
    return AuthOutcome(rule.kind, True, "")


def _same_path(target: str, path: str) -> bool:
    try:
        target_path = urlsplit(target).path
    except ValueError:
        return False
    return target_path.rstrip("/") == path.rstrip("/")
