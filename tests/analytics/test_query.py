"""The scoped query builder's parameter binding, round-tripped through real chDB.

ClickHouse reads a query parameter in its escaped text format: unescaped, a
backslash is an escape sequence (``a\\b`` came back as ``a`` + backspace) and
a tab or newline cuts the value short (an error). Integers that do not fit the
parameter's type wrap silently. Every value must come back exactly as bound,
or be refused before it reaches the store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hitmetrix.analytics.query import ScopedSelect, bound_value
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import check_project_scope

ODD_TEXT = ["'", '"', "\\", "a\\b", "a\\", "\\N", "\\'", "{}", "{p1:String}", "\x00", "a\x00b", "a\tb", "a\nb",
            "a\rb", "\\0", "\\\\", "é\u2028😀", "x" * 10_000]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    chdb_store = ChdbStore(tmp_path_factory.mktemp("query") / "store")
    yield chdb_store
    chdb_store.close()


@pytest.mark.parametrize("text", ODD_TEXT, ids=lambda t: repr(t[:20]))
def test_a_bound_string_reaches_clickhouse_as_itself(store: ChdbStore, text: str) -> None:
    q = ScopedSelect(1)
    placeholder = q.bind(text, "String")
    rows = store.query(f"SELECT {placeholder} AS s, length(s) AS n", q.params)
    assert rows == [{"s": text, "n": len(text.encode())}]


@pytest.mark.parametrize(
    ("value", "type_"), [(2**63 - 1, "Int64"), (-(2**63), "Int64"), (2**32 - 1, "UInt32"), (0, "UInt32")]
)
def test_integers_at_the_edges_of_their_type_reach_clickhouse_as_themselves(
    store: ChdbStore, value: int, type_: str
) -> None:
    q = ScopedSelect(1)
    rows = store.query(f"SELECT toString({q.bind(value, type_)}) AS v", q.params)
    assert rows == [{"v": str(value)}]


@pytest.mark.parametrize(
    ("value", "type_"),
    [(2**63, "Int64"), (-(2**63) - 1, "Int64"), (2**32, "UInt32"), (-1, "UInt32"), (True, "Int64"), ("1", "Int64"),
     (1.5, "Int64"), (b"x", "String"), (1, "String"), ("x", "DateTime")],
)
def test_a_value_the_type_cannot_hold_is_refused_before_the_store(value: object, type_: str) -> None:
    with pytest.raises(ValueError):
        bound_value(value, type_)


def test_a_project_id_past_uint32_is_refused() -> None:
    with pytest.raises(ValueError):
        ScopedSelect(2**32)
    assert ScopedSelect(2**32 - 1).params["project_id"] == 2**32 - 1


def test_a_select_over_a_scoped_select_keeps_its_project_and_parameters(store: ChdbStore) -> None:
    inner = ScopedSelect(1).from_("sessions", final=True)
    inner.select("session_id", "pageview_paths")
    inner.where(f"session_id != {inner.bind('x', 'String')}")
    outer = inner.nested().from_select(inner, array_join="pageview_paths AS page")
    outer.select("page", "count() AS n")
    outer.where(f"page != {outer.bind('/', 'String')}")
    outer.group_by.append("page")
    sql = outer.sql()
    check_project_scope(sql)
    assert sql.count("project_id = {project_id:UInt32}") == 1 and "ARRAY JOIN pageview_paths AS page" in sql
    assert outer.params == inner.params and set(outer.params) == {"project_id", "p1", "p2"}
    assert store.query(sql, outer.params) == []  # an empty store: the SQL runs, reading nothing
    with pytest.raises(ValueError, match="share"):
        ScopedSelect(1).from_select(inner)
    with pytest.raises(ValueError, match="same project"):
        ScopedSelect(2, params=inner.params).from_select(inner)
