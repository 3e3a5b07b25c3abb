"""When a target's lease was claimed: its record sets the next check one interval after the claim.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Expand-only: one nullable column. A lease taken by an older replica has no claimed_at; its
record keeps the next_check_at that claim set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_targets") as batch:
        batch.add_column(sa.Column("claimed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_targets") as batch:
        batch.drop_column("claimed_at")
