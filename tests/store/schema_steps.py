"""Undo ClickHouse schema steps in a data directory, to test that a directory from before a step upgrades."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def undo_step(clickhouse_dir: Path, version: int, sessions: Iterable[tuple[str, ...]] = (),
              segments: Iterable[tuple[str, ...]] = (), *, session_types: Iterable[tuple[str, str]] = (),
              tables: Iterable[str] = ()) -> None:
    """Drop the columns a step added (``sessions`` / ``segments``: schema lists, each entry's first item its
    name), give back the sessions columns whose type it changed their old type (``session_types``: name, type),
    drop the tables it made, and delete the ledger rows of that step and every later one: the directory as the
    step before left it."""
    from chdb import session

    ch = session.Session(str(clickhouse_dir))
    try:
        for table, columns in (("sessions", sessions), ("session_segments", segments)):
            for column in columns:
                ch.query(f"ALTER TABLE hitmetrix.{table} DROP COLUMN {column[0]}")
        changes = ", ".join(f"MODIFY COLUMN {name} {ch_type}" for name, ch_type in session_types)
        if changes:
            # Waited for: the next open must find the old types in every part, as the old release left them.
            ch.query(f"ALTER TABLE hitmetrix.sessions {changes} SETTINGS mutations_sync = 2")
        for table in tables:
            ch.query(f"DROP TABLE hitmetrix.{table} SYNC")
        ch.query(f"DELETE FROM hitmetrix.schema_migrations WHERE version >= {int(version)}")
    finally:
        ch.close()
