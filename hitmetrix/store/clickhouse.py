"""The event store: one small interface over ClickHouse, embedded as chDB by default.

All SQL execution goes through `EventStore`; callers pass parameters, never
format values into SQL. Only `ChdbStore.insert_arrow` knows it is in-process.
Every statement is checked for tenancy (``tenancy.check_project_scope``) unless
it is a ``SystemQuery``; the schema is brought up to date (``ch_migrations``)
when the store opens.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pyarrow as pa

from hitmetrix.store.ch_migrations import Engines, migrate
from hitmetrix.store.tenancy import SystemQuery, check_project_scope

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_JSON_SETTING = " output_format_json_quote_64bit_integers = 0"


class StoreLockedError(RuntimeError):
    """The data directory's store is held by another process (a running server)."""


class EventStore(Protocol):
    def query(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def execute(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> None: ...

    def insert_arrow(self, table: str, rows: pa.Table, dedup_token: str | None = None) -> None: ...

    def close(self) -> None: ...


class ChdbStore:
    """ClickHouse in process (chDB), one per data directory.

    One writer connection and a small pool of reader connections. A chDB
    connection serialises its callers on a mutex it takes while holding the
    GIL, and an `INSERT … FROM Python()` needs the GIL to read its Arrow table:
    a reader sharing the writer's connection deadlocks. So each connection is
    used by one thread at a time, behind a Python lock (which waits without
    the GIL), and readers never touch the writer's connection.
    """

    READERS = 4

    def __init__(self, path: Path, engines: Engines | None = None) -> None:
        import chdb
        from chdb import session  # imported late: a 180 MB engine

        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = session.Session(str(path))
        except RuntimeError as exc:
            if "Cannot lock file" in str(exc) or "already running" in str(exc):
                raise StoreLockedError(
                    f"the store in {path} is in use by another process (is `hitmetrix serve` running?)"
                ) from exc
            raise
        self._closed = False
        self._close_lock = threading.Lock()
        self._write_lock = threading.Lock()
        try:
            self.migrated = migrate(self._run_system, engines or Engines())
        except BaseException:
            self._session.close()
            raise
        self._readers: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all_readers = [chdb.connect(str(path)) for _ in range(self.READERS)]
        for reader in self._all_readers:
            self._readers.put(reader)

    def _run_system(self, sql: str) -> list[dict[str, Any]]:
        """Schema steps at start-up, on the writer's session."""
        raw = self._session.query(sql, "JSONEachRow").bytes()
        return [msgspec.json.decode(line) for line in raw.splitlines() if line]

    def query(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        sql = _checked(sql)
        # Our own SETTINGS clause comes last: append to it, or start one.
        text = f"{sql},{_JSON_SETTING}" if "\nSETTINGS " in sql else f"{sql}\nSETTINGS{_JSON_SETTING}"
        reader = self._readers.get()
        try:
            result = reader.query(text, "JSONEachRow", params=params or {})
            raw = result.bytes()
        finally:
            self._readers.put(reader)
        if not raw:
            return []
        return [msgspec.json.decode(line) for line in raw.splitlines() if line]

    def execute(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> None:
        sql = _checked(sql)
        with self._write_lock:
            self._session.query(sql, "CSV", params=params or {})

    def insert_arrow(self, table: str, rows: pa.Table, dedup_token: str | None = None) -> None:
        if not _IDENT.match(table):
            raise ValueError(f"bad table name {table!r}")
        settings = ""
        if dedup_token is not None:
            if not _TOKEN.match(dedup_token):
                raise ValueError(f"bad dedup token {dedup_token!r}")
            settings = f" SETTINGS insert_deduplicate = 1, insert_deduplication_token = '{dedup_token}'"
        # Name the columns: tables may have more (e.g. events.expires_at, filled by its DEFAULT).
        for name in rows.column_names:
            if not _IDENT.match(name) or "." in name:
                raise ValueError(f"bad column name {name!r}")
        columns = ", ".join(rows.column_names)
        # chDB resolves Python(arrow_rows) against this frame's local variables.
        arrow_rows = rows  # noqa: F841
        with self._write_lock:
            self._session.query(f"INSERT INTO {table} ({columns}){settings} SELECT * FROM Python(arrow_rows)")

    def close(self) -> None:
        with self._close_lock:
            if not self._closed:
                self._closed = True
                for reader in self._all_readers:
                    reader.close()
                with self._write_lock:
                    self._session.close()


def _checked(sql: str | SystemQuery) -> str:
    """The SQL to run: a system query as marked, anything else only if it keeps to one project."""
    if isinstance(sql, SystemQuery):
        return sql.sql
    check_project_scope(sql)
    return sql
