"""Projects: optional recording features, each off until an owner turns it on: the visitor's console messages
(record_console), their fetch / XHR requests (record_network) and web vitals (record_vitals). The tracker loads
the code of a feature only when its switch is on.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FEATURE_COLUMNS = ("record_console", "record_network", "record_vitals")


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        for name in FEATURE_COLUMNS:
            batch.add_column(sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        for name in reversed(FEATURE_COLUMNS):
            batch.drop_column(name)
