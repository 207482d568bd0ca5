"""Undo ClickHouse schema steps in a data directory, to test that a directory from before a step upgrades."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def undo_step(clickhouse_dir: Path, version: int, sessions: Iterable[tuple[str, ...]] = (),
              segments: Iterable[tuple[str, ...]] = ()) -> None:
    """Drop the columns a step added (``sessions`` / ``segments``: schema lists, each entry's first item its
    name) and the ledger rows of that step and every later one: the directory as the step before left it."""
    from chdb import session

    ch = session.Session(str(clickhouse_dir))
    try:
        for table, columns in (("sessions", sessions), ("session_segments", segments)):
            for column in columns:
                ch.query(f"ALTER TABLE hitmetrix.{table} DROP COLUMN {column[0]}")
        ch.query(f"DELETE FROM hitmetrix.schema_migrations WHERE version >= {int(version)}")
    finally:
        ch.close()
