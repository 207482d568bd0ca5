"""Memberships: the role "member" of the previous release is "analyst" now (it read everything, as analysts do).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE memberships SET role = 'analyst' WHERE role = 'member'")


def downgrade() -> None:
    # Viewers had no role of their own before: they could read everything too, as members.
    op.execute("UPDATE memberships SET role = 'member' WHERE role IN ('analyst', 'viewer')")
