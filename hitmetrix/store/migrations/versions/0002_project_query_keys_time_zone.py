"""Projects: allowed_query_keys (kept query-string values) and time_zone (IANA name the dashboard and the
date filters use).

allowed_query_keys may already exist: a stopgap of the release before migrations added it at start-up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hitmetrix.store.migrations import has_column

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    with op.batch_alter_table("projects") as batch:
        if not has_column(connection, "projects", "allowed_query_keys"):
            batch.add_column(sa.Column("allowed_query_keys", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("allowed_query_keys")
