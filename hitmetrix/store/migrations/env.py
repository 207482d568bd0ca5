"""Alembic's environment for the metadata store: runs on the connection MetaStore hands over.

At run time ``hitmetrix.store.migrations.upgrade`` passes its connection in
``config.attributes["connection"]``; Alembic's command line (``alembic -c
hitmetrix/store/migrations/alembic.ini …``) gets one from
``HITMETRIX_METADATA_URL`` or ``./data/meta.sqlite3``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from hitmetrix.store.migrations import all_models

config = context.config
target_metadata = all_models()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters a column by copying its table: Alembic's batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("HITMETRIX_METADATA_URL") or "sqlite:///data/meta.sqlite3"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")
_main()
