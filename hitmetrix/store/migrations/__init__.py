"""Migrations of the metadata store (Alembic), applied by MetaStore at start-up.

Revisions live in ``versions/``, one linear chain: revision 0001 is the schema
of the previous release (made by ``create_all`` before migrations existed), and
each later revision changes what a model changes. To add one, chain it after the
newest (``alembic -c hitmetrix/store/migrations/alembic.ini revision --rev-id 0004
-m "what it changes"``; ``… heads`` must show one head), then add the model
field. ``tests/store/test_migrations.py`` fails while models and revisions disagree.

A database without Alembic's version table but with the previous release's
tables is stamped as 0001 first, then upgraded like any other.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BASELINE = "0001"
# Any table the previous release made: its presence without a version table means "stamp 0001".
_BASELINE_TABLE = "projects"


def all_models() -> MetaData:
    """The metadata of every model in ``hitmetrix.store`` (each module that defines one is imported)."""
    import hitmetrix.store
    from hitmetrix.store.meta import Base

    for module in pkgutil.iter_modules(hitmetrix.store.__path__):
        if module.name != "migrations":
            importlib.import_module(f"hitmetrix.store.{module.name}")
    return Base.metadata


@functools.cache
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    heads = set(script_directory().get_heads())
    with engine.connect() as connection:
        if current_revisions(connection) == heads:
            return
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by copying it and dropping the old one; with foreign keys on,
            # that drop would cascade into every table that refers to it. Checked again before commit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # One transaction for all revisions, taken for writing at once: a second process starting at
            # the same time waits, then finds the database upgraded.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
        try:
            _upgrade_in_transaction(connection, sqlite=sqlite)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _upgrade_in_transaction(connection: Connection, *, sqlite: bool) -> None:
    config = _config(connection)
    before = current_revisions(connection)
    if not before and inspect(connection).has_table(_BASELINE_TABLE):
        log.info("metadata store made by a release without migrations: marking it as revision %s", BASELINE)
        command.stamp(config, BASELINE)
        before = {BASELINE}
    command.upgrade(config, "head")
    after = current_revisions(connection)
    if before != after:
        log.info("metadata store upgraded from %s to %s", sorted(before) or "nothing", sorted(after))
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"a metadata migration broke foreign keys: {broken[:5]}")


def has_column(connection: Connection, table: str, column: str) -> bool:
    """For revisions that must also run on databases where a stopgap already added the column."""
    return any(c["name"] == column for c in inspect(connection).get_columns(table))
