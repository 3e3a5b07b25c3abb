"""Watches, watch targets, report schedules; diagnosis runs keep the diagnosis they showed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Expand-only: new tables and one nullable column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("diagnosis_runs") as batch:
        batch.add_column(sa.Column("diagnosis", JSON, nullable=True))
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target_key", sa.String(), nullable=False),
        sa.Column("workspace", sa.String(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("deployment_id", sa.String(), nullable=True),
        sa.Column("deployment_name", sa.String(), nullable=True),
        sa.Column("min_risk", sa.String(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_reason", sa.String(), nullable=True),
        sa.Column("next_expand_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watches")),
        sa.UniqueConstraint(
            "team_id",
            "channel_id",
            "workspace",
            "target_key",
            name=op.f("uq_watches_team_id_channel_id_workspace_target_key"),
        ),
    )
    op.create_table(
        "watch_targets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(), nullable=False),
        sa.Column("deployment_name", sa.String(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("anchor_ts", sa.String(), nullable=True),
        sa.Column("job_id", sa.String(), nullable=True),
        sa.Column("top_symptom", sa.String(), nullable=True),
        sa.Column("muted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_check_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["watch_id"], ["watches.id"], name=op.f("fk_watch_targets_watch_id_watches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_targets")),
        sa.UniqueConstraint(
            "watch_id", "deployment_id", name=op.f("uq_watch_targets_watch_id_deployment_id")
        ),
    )
    op.create_index("ix_watch_targets_next_check_at", "watch_targets", ["next_check_at"])
    op.create_table(
        "report_schedules",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=True),
        sa.Column("minute", sa.Integer(), nullable=True),
        sa.Column("tz", sa.String(), nullable=True),
        sa.Column("next_due_at", sa.Float(), nullable=True),
        sa.Column("last_snapshot", JSON, nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_reason", sa.String(), nullable=True),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("team_id", "channel_id", name=op.f("pk_report_schedules")),
    )


def downgrade() -> None:
    op.drop_table("report_schedules")
    op.drop_index("ix_watch_targets_next_check_at", table_name="watch_targets")
    op.drop_table("watch_targets")
    op.drop_table("watches")
    with op.batch_alter_table("diagnosis_runs") as batch:
        batch.drop_column("diagnosis")
