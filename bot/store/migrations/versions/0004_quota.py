"""Replicas' shares of the account's API quota.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Expand-only: one new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quota_replicas",
        sa.Column("replica_id", sa.String(), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.Column("cap_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("pk_quota_replicas")),
    )


def downgrade() -> None:
    op.drop_table("quota_replicas")
