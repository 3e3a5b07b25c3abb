"""Watch targets can share their alert anchor (a storm digest).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Expand-only: one column with a server default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_targets") as batch:
        batch.add_column(sa.Column("anchor_shared", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("watch_targets") as batch:
        batch.drop_column("anchor_shared")
