"""ORM rows. They never leave `bot.store`: repositories turn them into pydantic models.

Changing a model here changes nothing in a database by itself: every change needs a migration
in `bot/store/migrations/versions/` (see `bot.store.db`). `tests/test_store_schema.py` fails when
the models and the migrated schema disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store.types import UTCDateTime

# Named constraints: Alembic's SQLite batch mode (table copy-and-move) can only drop or alter a
# constraint it can name, and stable names keep PostgreSQL and SQLite migrations identical.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact); JSON (text) elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class ChannelDefaultsRow(Base):
    """Per-channel defaults so users need not repeat --workspace/--namespace."""

    __tablename__ = "channel_defaults"

    team_id: Mapped[str] = mapped_column(String, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String, primary_key=True)
    namespace: Mapped[str | None]
    workspace: Mapped[str | None]
    updated_by: Mapped[str | None]
    updated_at: Mapped[datetime | None]


class DiagnosisRunRow(Base):
    """What is kept of one diagnosis: enough to compare the next run of the same job against."""

    __tablename__ = "diagnosis_runs"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    team_id: Mapped[str]
    channel_id: Mapped[str]
    user_id: Mapped[str]
    workspace: Mapped[str]
    namespace: Mapped[str]
    deployment_id: Mapped[str]
    deployment_name: Mapped[str | None]
    job_id: Mapped[str]
    region: Mapped[str | None]
    risk: Mapped[str | None]
    health_score: Mapped[int | None]
    symptoms: Mapped[list[Any]]  # [{"category": ..., "name": ...}, ...]
    diagnosed_at: Mapped[datetime]
    # Deliberately not a foreign key: pruning old runs must not cascade, and on SQLite a
    # self-reference makes every future batch (copy-and-move) migration of this table fragile.
    previous_run_id: Mapped[str | None]
    # the wire-format diagnosis as shown, so Share posts exactly what the user saw (added in 0002)
    diagnosis: Mapped[dict[str, Any] | None]

    __table_args__ = (
        # latest_for(): equality on the job's coordinates, newest first.
        # Named explicitly: the conventional name is over PostgreSQL's 63-character limit.
        Index(
            "ix_diagnosis_runs_job_time", "workspace", "namespace", "deployment_id", "job_id", "diagnosed_at"
        ),
    )


class WatchRow(Base):
    """A channel's watch of one deployment or of a whole namespace."""

    __tablename__ = "watches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str]
    channel_id: Mapped[str]
    kind: Mapped[str]  # deployment | namespace
    # "deployment:<ns>/<id>" or "namespace:<ns>": one watch per thing per channel
    target_key: Mapped[str]
    workspace: Mapped[str]
    namespace: Mapped[str]
    deployment_id: Mapped[str | None]
    deployment_name: Mapped[str | None]
    min_risk: Mapped[str]  # a risk level's raw value, or "off"
    # The watch's other conditions (bot.watch.lifecycle.Settings; added in 0009). NULL = off.
    failures: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    restarts: Mapped[int | None] = mapped_column(Integer, default=3, server_default="3")
    min_health: Mapped[int | None] = mapped_column(Integer)
    interval_seconds: Mapped[int]
    created_by: Mapped[str | None]
    created_at: Mapped[datetime | None]
    # channel_not_found / not_in_channel / is_archived: Slack refused; no checks until resumed
    paused_reason: Mapped[str | None]
    # namespace watches: when to list the namespace again (epoch seconds)
    next_expand_at: Mapped[float | None] = mapped_column(Float)
    # The watch's outage (bot.watch.outage.OutageState; added in 0004): NULL since = no outage.
    outage_since: Mapped[datetime | None]
    outage_note_ts: Mapped[str | None]
    outage_thread_ts: Mapped[str | None]
    outage_listed: Mapped[list[Any] | None]  # deployment ids
    # Compare-and-set: replicas deciding on one watch's outage at once act only once.
    outage_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    outage_lease_owner: Mapped[str | None]
    outage_lease_until: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("team_id", "channel_id", "workspace", "target_key"),)


class WatchTargetRow(Base):
    """One watched deployment for one watch: the policy state, the alert anchor, the snooze."""

    __tablename__ = "watch_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    deployment_id: Mapped[str]
    deployment_name: Mapped[str | None]
    interval_seconds: Mapped[int]  # copied from the watch so a claim is one UPDATE
    state: Mapped[dict[str, Any]]  # bot.watch.policy.TargetState (its snooze fields unused)
    # The snooze, owned by the Snooze buttons (a check never writes it): until a time, or until
    # a new job; either way only while the job is still `snoozed_job_id` (added in 0009).
    snoozed_until: Mapped[datetime | None]
    snoozed_until_redeploy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    snoozed_job_id: Mapped[str | None]
    anchor_ts: Mapped[str | None]  # the episode's first alert message (thread root)
    # the anchor is a storm digest shared by several deployments (added in 0003)
    anchor_shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    job_id: Mapped[str | None]
    top_symptom: Mapped[str | None]
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    next_check_at: Mapped[float] = mapped_column(Float)
    lease_owner: Mapped[str | None]
    lease_until: Mapped[float | None] = mapped_column(Float)
    # when the lease holder claimed it: its record sets the next check one interval later (0008)
    claimed_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("watch_id", "deployment_id"),
        Index("ix_watch_targets_next_check_at", "next_check_at"),
    )


class DeliveryRow(Base):
    """A post the watch loop is about to make, recorded before it is made (added in 0004).

    `key` goes out with the message as Slack metadata, so after a crash or a lost answer the
    message can be found in the channel's history instead of being posted twice. A check's record
    deletes its target's rows except the one whose outcome is still unknown (`bot.store.deliveries`).
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("watch_targets.id", ondelete="CASCADE"))
    kind: Mapped[str]  # what is posted: the policy's reason (first_alert, further_rise, ...)
    key: Mapped[str] = mapped_column(String, unique=True)
    since: Mapped[float] = mapped_column(Float)  # epoch seconds the intent was first recorded
    ts: Mapped[str | None]  # Slack's answer, once it came back
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # ts is a digest

    __table_args__ = (Index("ix_deliveries_target_id_kind", "target_id", "kind"),)


class ReportScheduleRow(Base):
    """A channel's scheduled report and what the last report showed."""

    __tablename__ = "report_schedules"

    team_id: Mapped[str] = mapped_column(String, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String, primary_key=True)
    mode: Mapped[str]  # daily | weekdays | off
    hour: Mapped[int | None]
    minute: Mapped[int | None]
    tz: Mapped[str | None]
    next_due_at: Mapped[float | None] = mapped_column(Float)
    last_snapshot: Mapped[dict[str, Any] | None]
    last_sent_at: Mapped[datetime | None]
    paused_reason: Mapped[str | None]
    updated_by: Mapped[str | None]
    updated_at: Mapped[datetime | None]


class QuotaReplicaRow(Base):
    """One replica's share of the account's API quota (bot.store.quota); times are the database's."""

    __tablename__ = "quota_replicas"

    replica_id: Mapped[str] = mapped_column(String, primary_key=True)
    quota: Mapped[int]  # the whole quota per window as this replica is configured
    cap: Mapped[int]  # calls per window this replica may send: never below what it really sends
    cap_at: Mapped[float] = mapped_column(Float)  # when `cap` last changed (epoch seconds)
    heartbeat_at: Mapped[float] = mapped_column(Float)  # live while heartbeat_at + lease > now


class SeenRequestRow(Base):
    """Signed Slack requests already taken, so a replayed one is processed once across replicas."""

    __tablename__ = "seen_requests"

    key: Mapped[str] = mapped_column(String, primary_key=True)  # sha256 of the request's signature
    seen_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_seen_requests_seen_at", "seen_at"),)
