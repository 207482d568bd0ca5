"""The one query builder for analytics: every table it reads is scoped to one project.

Analytics code never writes `FROM table` by hand. `ScopedSelect.from_()` and
`in_subquery()` add `project_id = {project_id:UInt32}` to each table they
touch, so no query can forget tenancy. Values are always bound parameters.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from hitmetrix.store.schema import DATABASE

_TABLE = re.compile(r"^[a-z_]+$")


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

    def __post_init__(self) -> None:
        self.params["project_id"] = self.project_id

    def select(self, *columns: str) -> ScopedSelect:
        self.columns.extend(columns)
        return self

    def from_(self, table: str, *, final: bool = False) -> ScopedSelect:
        if not _TABLE.match(table):
            raise ValueError(f"bad table {table!r}")
        self.table, self.final = table, final
        return self

    def bind(self, value: Any, type_: str) -> str:
        """A fresh parameter placeholder for value."""
        name = f"p{next(self._names)}"
        self.params[name] = value
        return f"{{{name}:{type_}}}"

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
        if not self.table or not self.columns:
            raise ValueError("a query needs columns and a table")
        lines = [
            "SELECT " + ",\n       ".join(self.columns),
            f"FROM {DATABASE}.{self.table}" + (" FINAL" if self.final else ""),
            "WHERE " + "\n  AND ".join(["project_id = {project_id:UInt32}", *self.wheres]),
        ]
        if self.group_by:
            lines.append("GROUP BY " + ", ".join(self.group_by))
        if self.havings:
            lines.append("HAVING " + "\n   AND ".join(self.havings))
        if self.order_by:
            lines.append("ORDER BY " + ", ".join(self.order_by))
        if self.limit is not None:
            lines.append(f"LIMIT {int(self.limit)}")
        return "\n".join(lines)
