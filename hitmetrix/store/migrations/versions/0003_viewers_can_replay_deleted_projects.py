"""Projects: viewers_can_replay (may viewers watch replays); deleted_projects (ids never given out again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("viewers_can_replay", sa.Boolean(), nullable=False, server_default="1"))
    op.create_table(
        "deleted_projects",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("deleted_projects")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("viewers_can_replay")
