"""Delivery intents: a post is recorded before it is made, so a restart never repeats it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Expand-only: one new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("ts", sa.String(), nullable=True),
        sa.Column("shared", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["watch_targets.id"],
            name=op.f("fk_deliveries_target_id_watch_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_deliveries_key")),
    )
    op.create_index("ix_deliveries_target_id_kind", "deliveries", ["target_id", "kind"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_target_id_kind", table_name="deliveries")
    op.drop_table("deliveries")
