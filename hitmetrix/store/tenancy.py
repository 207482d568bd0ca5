"""Tenancy, checked on every statement the event store runs: project tables are read one project at a time.

A statement may name a project table (one with a ``project_id`` column) only as
``FROM <table> [FINAL] WHERE project_id = {name:UInt32}`` (or ``ALTER TABLE <table>
DELETE WHERE project_id = {name:UInt32}``), with the rest of that ``WHERE`` joined
by ``AND`` alone — a top-level ``OR`` would widen it to every project. The
analytics query builder (``hitmetrix.analytics.query``) writes exactly that. Any
other use of a project table (the loader's inserts, summaries and repairs, schema
steps) must be wrapped in ``SYSTEM_QUERY(...)``: loud, greppable, and allowed only
in ``hitmetrix.store`` (a test keeps it there).

The check guards against forgetting, not against an adversary writing SQL: values
never reach SQL text (they are bound parameters), so it only reads what our own
code wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hitmetrix.store.schema import DATABASE, PROJECT_TABLES


class TenancyError(ValueError):
    """A statement reads or changes a project table without the project condition."""


@dataclass(frozen=True)
class SystemQuery:
    """SQL that may touch every project's rows. Make one only with ``SYSTEM_QUERY``."""

    sql: str


def SYSTEM_QUERY(sql: str) -> SystemQuery:  # noqa: N802 - loud on purpose: every use is a tenancy exception
    """Mark SQL as a system query (the loader's, the schema's): the project check is skipped for it."""
    return SystemQuery(sql)


# Strings, quoted identifiers, comments, parameters, words, other characters.
_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<quoted>"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`)
      | (?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<param>\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:\s*[^{}]+\})
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_PROJECT_PARAM = re.compile(r"^\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:\s*UInt32\s*\}$")
# Words that end a WHERE clause (at the same bracket depth).
_CLAUSE_END = frozenset(
    {"GROUP", "HAVING", "ORDER", "LIMIT", "SETTINGS", "UNION", "INTERSECT", "EXCEPT", "FORMAT", "WINDOW", "QUALIFY"}
)


@dataclass(frozen=True)
class _Token:
    kind: str  # word, ident (a quoted identifier, unquoted), param, string (its text dropped), other
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        return self.text if self.kind in ("word", "ident") else ""


def _tokens(sql: str) -> list[_Token]:
    out: list[_Token] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind in ("space", "comment", "string"):
            if kind == "string":
                out.append(_Token("string", ""))
            continue
        if kind == "quoted":
            out.append(_Token("ident", text[1:-1]))
        else:
            out.append(_Token(kind, text))
    return out


def check_project_scope(sql: str) -> None:
    """Raise TenancyError if ``sql`` uses a project table other than one project at a time."""
    tokens = _tokens(sql)
    for index in range(len(tokens)):
        table_at = _project_table_at(tokens, index)
        if table_at is None:
            continue
        table, after = table_at
        problem = _scope_problem(tokens, index, after)
        if problem:
            raise TenancyError(
                f"{DATABASE}.{table} is used without the project condition ({problem}): build the query with "
                "hitmetrix.analytics.query.ScopedSelect, or mark a loader/schema statement with SYSTEM_QUERY"
            )


def _project_table_at(tokens: list[_Token], index: int) -> tuple[str, int] | None:
    """(table, index after it) when a project table is named at ``index`` (``db.table``, or a bare table
    name after FROM, JOIN, TABLE, INTO or IN)."""
    token = tokens[index]
    if token.name == DATABASE and _is(tokens, index + 1, ".") and index + 2 < len(tokens):
        table = tokens[index + 2].name
        if table in PROJECT_TABLES:
            return table, index + 3
        return None
    after_keyword = index > 0 and tokens[index - 1].upper in ("FROM", "JOIN", "TABLE", "INTO", "IN")
    if token.name in PROJECT_TABLES and after_keyword:
        return token.name, index + 1
    return None


def _scope_problem(tokens: list[_Token], start: int, after: int) -> str:
    before = tokens[start - 1].upper if start > 0 else ""
    if before == "FROM":
        i = after + 1 if _word(tokens, after, "FINAL") else after
    elif before == "TABLE" and start > 1 and tokens[start - 2].upper == "ALTER" and _word(tokens, after, "DELETE"):
        i = after + 1
    else:
        return f"named after {before or 'nothing'}: only FROM, or ALTER TABLE … DELETE, are scoped"
    if not _word(tokens, i, "WHERE"):
        return "no WHERE right after the table"
    condition = tokens[i + 1 : i + 4]
    if not (
        len(condition) == 3
        and condition[0].name == "project_id"
        and condition[1].kind == "other"
        and condition[1].text == "="
        and condition[2].kind == "param"
        and _PROJECT_PARAM.match(condition[2].text)
    ):
        return "the WHERE does not start with project_id = {…:UInt32}"
    return _rest_of_where(tokens, i + 4)


def _rest_of_where(tokens: list[_Token], i: int) -> str:
    """What follows the project condition may only narrow it: AND at the WHERE's own depth, never OR."""
    depth = 0
    for n, token in enumerate(tokens[i:]):
        if depth == 0 and (token.upper in _CLAUSE_END or (token.kind == "other" and token.text == ";")):
            return ""
        if n == 0 and token.upper != "AND" and not (token.kind == "other" and token.text in ")]"):
            return "the project condition is not followed by AND or the end of the WHERE"
        if token.kind == "other" and token.text in "([":
            depth += 1
        elif token.kind == "other" and token.text in ")]":
            depth -= 1
            if depth < 0:
                return ""
        elif depth == 0 and (token.upper == "OR" or (token.kind == "other" and token.text == "?")):
            return "an OR beside it: put each condition in brackets"
    return ""


def _is(tokens: list[_Token], index: int, text: str) -> bool:
    return index < len(tokens) and tokens[index].kind == "other" and tokens[index].text == text


def _word(tokens: list[_Token], index: int, word: str) -> bool:
    return index < len(tokens) and tokens[index].upper == word
