"""Watches keep their outage: one can't-check note per watch per outage (issue 7).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Expand-only: nullable columns and one with a server default, all on `watches`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        batch.add_column(sa.Column("outage_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outage_note_ts", sa.String(), nullable=True))
        batch.add_column(sa.Column("outage_thread_ts", sa.String(), nullable=True))
        batch.add_column(sa.Column("outage_listed", JSON, nullable=True))
        batch.add_column(sa.Column("outage_version", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("outage_lease_owner", sa.String(), nullable=True))
        batch.add_column(sa.Column("outage_lease_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        for name in (
            "outage_lease_until",
            "outage_lease_owner",
            "outage_version",
            "outage_listed",
            "outage_thread_ts",
            "outage_note_ts",
            "outage_since",
        ):
            batch.drop_column(name)
