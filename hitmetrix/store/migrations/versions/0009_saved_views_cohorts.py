"""Saved views (a named analytics page with its query string) and cohorts (a named definition of a set of
people), both per project and deleted with it; names unique per project.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
    ]


def _created() -> list[sa.Column]:
    return [
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "saved_views",
        *_common(),
        sa.Column("page", sa.String(32), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        *_created(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_saved_views_project_id_name", "saved_views", ["project_id", "name"], unique=True)
    op.create_table(
        "cohorts",
        *_common(),
        sa.Column("definition", sa.Text(), nullable=False),
        *_created(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cohorts_project_id_name", "cohorts", ["project_id", "name"], unique=True)


def downgrade() -> None:
    op.drop_table("cohorts")
    op.drop_table("saved_views")
