"""The one query builder for analytics: every table it reads is scoped to one project.

Analytics code never writes `FROM table` by hand. `ScopedSelect.from_()` and
`in_subquery()` add `project_id = {project_id:UInt32}` to each table they
touch, so no query can forget tenancy; each `where`/`having` condition is put in
brackets, so none can widen the project condition with an `OR`. The store checks
the finished SQL again (``hitmetrix.store.tenancy``) and refuses a project table
read any other way. Values are always bound parameters, written in the form
ClickHouse parses parameters in (`bound_value`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from hitmetrix.store.schema import DATABASE

_TABLE = re.compile(r"^[a-z_]+$")
_INT_RANGES = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
# ClickHouse reads a parameter in its "escaped" text format: a backslash starts
# an escape sequence, and a raw tab or newline ends the value early.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def bound_value(value: Any, type_: str) -> Any:
    """value as a query parameter of ClickHouse type type_, refused if that type cannot hold it.

    ClickHouse wraps an integer that does not fit its type silently, and turns
    ``a\\b`` into ``a`` + backspace: either would be a wrong answer, not an error.
    """
    if type_ in _INT_RANGES:
        low, high = _INT_RANGES[type_]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{value!r} is not a {type_}")
        return value
    if type_ == "String":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        return value.translate(_ESCAPES)
    raise ValueError(f"no rule to bind a {type_}")


@dataclass
class ScopedSelect:
    project_id: int
    columns: list[str] = field(default_factory=list)
    table: str = ""
    final: bool = False
    wheres: list[str] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    havings: list[str] = field(default_factory=list)
    order_by: list[str] = field(default_factory=list)
    limit: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))
    # A SELECT over another scoped SELECT's rows instead of a table (``from_select``).
    source: ScopedSelect | None = None
    array_join: str = ""

    def __post_init__(self) -> None:
        self.params["project_id"] = bound_value(self.project_id, "UInt32")

    def select(self, *columns: str) -> ScopedSelect:
        self.columns.extend(columns)
        return self

    def from_(self, table: str, *, final: bool = False) -> ScopedSelect:
        if not _TABLE.match(table):
            raise ValueError(f"bad table {table!r}")
        self.table, self.final = table, final
        return self

    def from_select(self, inner: ScopedSelect, *, array_join: str = "") -> ScopedSelect:
        """Read the rows of ``inner`` (scoped itself; make this one with ``inner.nested()`` so both share their
        parameters), ``ARRAY JOIN``-ed with ``array_join`` if given: a value computed per row of ``inner`` is then
        computed once, not once per element the join makes of that row."""
        if inner.project_id != self.project_id or inner.params is not self.params:
            raise ValueError("the inner SELECT must be of the same project and share its parameters (nested())")
        self.source, self.array_join = inner, array_join
        return self

    def bind(self, value: Any, type_: str) -> str:
        """A fresh parameter placeholder for value."""
        name = f"p{next(self._names)}"
        self.params[name] = bound_value(value, type_)
        return f"{{{name}:{type_}}}"

    def nested(self) -> ScopedSelect:
        """Another SELECT of the same project that shares this one's parameters (and their numbering), so one
        may be written into the other as a subquery and both run with ``params`` of either."""
        return ScopedSelect(self.project_id, params=self.params, _names=self._names)

    def where(self, condition: str) -> ScopedSelect:
        self.wheres.append(condition)
        return self

    def having(self, condition: str) -> ScopedSelect:
        self.havings.append(condition)
        return self

    def in_subquery(self, column: str, table: str, select: str, condition: str) -> str:
        """`column IN (SELECT select FROM table WHERE project_id = … AND condition)`, scoped too."""
        if not _TABLE.match(table):
            raise ValueError(f"bad table {table!r}")
        return (
            f"{column} IN (SELECT {select} FROM {DATABASE}.{table}"
            f" WHERE project_id = {{project_id:UInt32}} AND ({condition}))"
        )

    def sql(self) -> str:
        if self.source is not None and self.columns:
            # The inner SELECT carries the project condition; rows of it are of that project only.
            lines = ["SELECT " + ",\n       ".join(self.columns), "FROM (\n" + self.source.sql() + "\n)"]
            if self.array_join:
                lines.append(f"ARRAY JOIN {self.array_join}")
            if self.wheres:
                lines.append("WHERE " + "\n  AND ".join(f"({w})" for w in self.wheres))
            return "\n".join(lines + self._tail())
        if not self.table or not self.columns:
            raise ValueError("a query needs columns and a table")
        lines = [
            "SELECT " + ",\n       ".join(self.columns),
            f"FROM {DATABASE}.{self.table}" + (" FINAL" if self.final else ""),
            "WHERE " + "\n  AND ".join(["project_id = {project_id:UInt32}", *(f"({w})" for w in self.wheres)]),
        ]
        return "\n".join(lines + self._tail())

    def _tail(self) -> list[str]:
        lines: list[str] = []
        if self.group_by:
            lines.append("GROUP BY " + ", ".join(self.group_by))
        if self.havings:
            lines.append("HAVING " + "\n   AND ".join(f"({h})" for h in self.havings))
        if self.order_by:
            lines.append("ORDER BY " + ", ".join(self.order_by))
        if self.limit is not None:
            lines.append(f"LIMIT {int(self.limit)}")
        return lines
