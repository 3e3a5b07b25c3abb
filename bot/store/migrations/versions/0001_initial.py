"""Initial schema: channel defaults and diagnosis runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Migrations are frozen history: they spell out their types instead of importing the models,
so a later change to `bot/store/models.py` cannot rewrite what this step did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_defaults",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=True),
        sa.Column("workspace", sa.String(), nullable=True),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("team_id", "channel_id", name=op.f("pk_channel_defaults")),
    )
    op.create_table(
        "diagnosis_runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("workspace", sa.String(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("deployment_id", sa.String(), nullable=False),
        sa.Column("deployment_name", sa.String(), nullable=True),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("risk", sa.String(), nullable=True),
        sa.Column("health_score", sa.Integer(), nullable=True),
        sa.Column("symptoms", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("diagnosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_run_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_runs")),
    )
    op.create_index(
        "ix_diagnosis_runs_job_time",
        "diagnosis_runs",
        ["workspace", "namespace", "deployment_id", "job_id", "diagnosed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_diagnosis_runs_job_time", table_name="diagnosis_runs")
    op.drop_table("diagnosis_runs")
    op.drop_table("channel_defaults")
