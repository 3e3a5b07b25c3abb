"""Watches alert on failed jobs, restart loops and low health; snoozes until a redeploy.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

Expand-only: columns with server defaults (existing watches get failures on, restarts 3, health
off, as new ones do). Stored target states need no rewrite: `TargetState` reads the older
risk-only form and turns an open risk episode into an open risk incident.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        batch.add_column(sa.Column("failures", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch.add_column(sa.Column("restarts", sa.Integer(), server_default="3", nullable=True))
        batch.add_column(sa.Column("min_health", sa.Integer(), nullable=True))
    with op.batch_alter_table("watch_targets") as batch:
        batch.add_column(
            sa.Column("snoozed_until_redeploy", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("snoozed_job_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_targets") as batch:
        batch.drop_column("snoozed_job_id")
        batch.drop_column("snoozed_until_redeploy")
    with op.batch_alter_table("watches") as batch:
        batch.drop_column("min_health")
        batch.drop_column("restarts")
        batch.drop_column("failures")
