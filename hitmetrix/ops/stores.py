"""How a data directory's two stores are doing, read without changing them: for the doctor and ``/healthz``.

The metadata database is opened read-only (SQLite) and asked for its Alembic
revision; the ClickHouse store for its tables and the schema steps its ledger
records. A running server reports on its own open store (``store_report``);
with none running the doctor opens the store itself (``store_status``).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from hitmetrix.store.schema import DATABASE

META_FILE = "meta.sqlite3"
SERVE_HINT = "the server creates and upgrades it when it starts: hitmetrix serve"


class Queryable(Protocol):
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class MetadataStatus:
    error: str = ""
    hint: str = ""
    where: str = ""
    projects: int = 0
    users: int = 0
    current: str | None = None  # the database's Alembic revision (None: never stamped)
    head: str | None = None  # the newest revision this version knows


def metadata_status(metadata_url: str, data_dir: Path) -> MetadataStatus:
    """Open the metadata database read-only and count what is in it; ``error`` says why it does not open."""
    if metadata_url:
        url, where = metadata_url, "metadata_url"
    else:
        path = Path(data_dir) / META_FILE
        if not path.is_file():
            return MetadataStatus(error=f"no metadata database ({META_FILE})", hint=SERVE_HINT)
        # mode=ro: the doctor never creates or changes the file, even by accident.
        url, where = f"sqlite:///file:{path}?mode=ro&uri=true", META_FILE
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            projects = int(db.execute(text("SELECT count(*) FROM projects")).scalar_one())
            users = int(db.execute(text("SELECT count(*) FROM users")).scalar_one())
            current = _alembic_revision(db)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)  # the driver's own message, without SQLAlchemy's wrapping
        message = str(orig) if orig is not None else str(exc)
        return MetadataStatus(
            error=f"the metadata database does not open or lacks its tables: {message}",
            hint="check metadata_url / the file's owner; " + SERVE_HINT,
            where=where,
        )
    finally:
        engine.dispose()
    return MetadataStatus(where=where, projects=projects, users=users, current=current, head=metadata_head())


def _alembic_revision(db: Any) -> str | None:
    from hitmetrix.store.migrations import current_revisions

    heads = current_revisions(db)
    return ",".join(sorted(heads)) if heads else None


def metadata_head() -> str | None:
    """The newest metadata revision this version ships."""
    from hitmetrix.store.migrations import script_directory

    heads = script_directory().get_heads()
    return ",".join(sorted(heads)) if heads else None


def known_metadata_revision(revision: str) -> bool:
    """Whether this version ships ``revision`` (a database of a newer release has one it does not)."""
    from alembic.util import CommandError

    from hitmetrix.store.migrations import script_directory

    try:
        return all(script_directory().get_revision(r) is not None for r in revision.split(","))
    except CommandError:
        return False


def store_report(store: Queryable) -> dict[str, Any]:
    """The store's tables and schema steps, from an open store (the server's own, or one the doctor opened).

    ``current``: the newest step the ledger records (None: no ledger yet); ``head``: the newest step this
    version declares; ``pending``: declared steps not applied; ``unknown``: applied steps this version
    does not declare (a newer release made the data).
    """
    from hitmetrix.store.ch_migrations import LEDGER, STEPS

    declared = {step.version for step in STEPS}
    try:
        rows = store.query(
            "SELECT name FROM system.tables WHERE database = {database:String}", {"database": DATABASE}
        )
        tables = {row["name"] for row in rows}
        applied: set[int] = set()
        if LEDGER.split(".", 1)[1] in tables:
            applied = {int(row["version"]) for row in store.query(f"SELECT DISTINCT version FROM {LEDGER}")}
    except Exception as exc:  # noqa: BLE001 - a report of what is wrong, never an error page
        return {"error": f"the store does not answer: {type(exc).__name__}: {exc}", "hint": SERVE_HINT}
    return {
        "tables": len(tables),
        "current": max(applied) if applied else None,
        "head": max(declared) if declared else None,
        "pending": sorted(declared - applied),
        "unknown": sorted(applied - declared),
    }


class _SessionStore:
    """``query`` over a bare chDB session, for ``store_report`` (no DDL runs, unlike ``ChdbStore``)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        import msgspec

        raw = self._session.query(sql, "JSONEachRow", params=params or {}).bytes()
        return [msgspec.json.decode(line) for line in raw.splitlines() if line]


def store_status(path: Path) -> dict[str, Any]:
    """``store_report`` of the store in ``path``, opened here; ``error`` when another process holds it."""
    # Whatever the engine writes meanwhile stays the owner's alone, as the server keeps the directory.
    umask = os.umask(0o077)
    try:
        return _open_and_report(path)
    finally:
        os.umask(umask)


_LOCKED = {
    "error": "the store is in use by another process (a server running without its server.json?)",
    "hint": "stop that process, or run the doctor while the server runs normally",
}


def held_elsewhere(path: Path) -> bool:
    """Whether a process holds the store's lock: ClickHouse flocks ``status`` while it has the store open.
    Asked before opening, so that the engine's own complaint does not end up on the doctor's stderr."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_and_report(path: Path) -> dict[str, Any]:
    from chdb import session

    if held_elsewhere(path):
        return dict(_LOCKED)
    try:
        opened = session.Session(str(path))
    except RuntimeError as exc:
        if "lock" in str(exc).lower() or "already running" in str(exc):
            return dict(_LOCKED)
        return {"error": f"the store does not open: {exc}", "hint": SERVE_HINT}
    try:
        return store_report(_SessionStore(opened))
    finally:
        opened.close()
