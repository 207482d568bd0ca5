"""Projects: a server key for server-side sources (each existing project gets one), and auth inference rules.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("server_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("auth_rules", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    projects = sa.table("projects", sa.column("id", sa.Integer()), sa.column("server_key", sa.String(64)))
    for (project_id,) in connection.execute(sa.select(projects.c.id)).all():
        # Same form as hitmetrix.store.meta.new_server_key (a revision must not import models that change later).
        key = "hm_sk_" + secrets.token_urlsafe(24)
        connection.execute(projects.update().where(projects.c.id == project_id).values(server_key=key))
    with op.batch_alter_table("projects") as batch:
        batch.alter_column("server_key", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_projects_server_key", ["server_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_index("ix_projects_server_key")
        batch.drop_column("auth_rules")
        batch.drop_column("server_key")
