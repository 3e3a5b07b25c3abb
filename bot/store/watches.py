"""Watches, their per-deployment targets (policy state, alert anchor, snooze) and report schedules.

Scheduling columns are epoch seconds (float) so "due" arithmetic (`now + interval`) is plain SQL
on both engines. Work is handed out by atomic claims, so replicas sharing one database never
take the same check or report:

* targets are claimed a page at a time by one UPDATE … WHERE due AND not leased … RETURNING; on
  PostgreSQL the due rows are picked FOR UPDATE SKIP LOCKED (a concurrent claim takes the next
  page) and the WHERE is re-checked on rows another transaction just changed; SQLite serialises
  writers (BEGIN IMMEDIATE), so a second replica finds the claimed rows no longer due. Small
  pages are what let replicas work through one sweep side by side.
* while leased, a target's `next_check_at` is its lease's end: a replica that dies mid-check
  leaves the target due again one lease later (not one interval later, which would skip a
  check). The holder renews the lease while the check runs (`renew_leases`), so a slow check is
  never taken over; the record (`record_checks`) lands only for the lease holder and sets the
  next check one interval after the claim (`claimed_at`), so a long sweep never checks a
  deployment twice in one interval.
* a report is claimed by compare-and-set on its `next_due_at`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.store.db import dialect_insert
from bot.store.deliveries import settle
from bot.store.models import ReportScheduleRow, WatchRow, WatchTargetRow
from bot.store.types import Clock, utc_now
from bot.watch.model import CheckRecord, OutageView, Watch, WatchTarget
from bot.watch.outage import OutageState
from bot.watch.policy import TargetState
from bot.watch.schedules import ReportSchedule

_w = WatchRow.__table__
_t = WatchTargetRow.__table__
_r = ReportScheduleRow.__table__

# A check that takes longer than this is assumed dead and its target may be claimed again.
DEFAULT_LEASE_SECONDS = 120.0
# Posting or editing one outage note; a replica that dies meanwhile hands the note on after this.
OUTAGE_LEASE_SECONDS = 60.0

# A check's record, for executemany; the WHERE repeats the lease test.
_RECORD = (
    update(_t)
    .where(_t.c.id == bindparam("b_id"), _t.c.lease_owner == bindparam("b_owner"))
    .values(
        state=bindparam("b_state"),
        anchor_ts=bindparam("b_anchor_ts"),
        anchor_shared=bindparam("b_anchor_shared"),
        job_id=bindparam("b_job_id"),
        top_symptom=bindparam("b_top_symptom"),
        # one interval after the claim; a row claimed before 0008 has no claimed_at and keeps the
        # next_check_at its claim set
        next_check_at=func.coalesce(_t.c.claimed_at + _t.c.interval_seconds, _t.c.next_check_at),
        lease_owner=None,
        lease_until=None,
        claimed_at=None,
    )
)


class DuplicateWatch(ValueError):
    def __init__(self, existing: Watch) -> None:
        super().__init__(f"already watching {existing.label}")
        self.existing = existing


def target_key(kind: str, namespace: str, deployment_id: str | None) -> str:
    return f"namespace:{namespace}" if kind == "namespace" else f"deployment:{namespace}/{deployment_id}"


def _watch(m: Any) -> Watch:
    fields = {k: m[k] for k in Watch.model_fields if k != "outage"}
    return Watch.model_validate(fields | {"outage": _outage(m)})


def _outage(m: Any) -> OutageState:
    if m["outage_since"] is None:
        return OutageState()
    listed = m["outage_listed"] if isinstance(m["outage_listed"], list) else []
    return OutageState(
        since=m["outage_since"],
        note_ts=m["outage_note_ts"],
        thread_ts=m["outage_thread_ts"],
        listed=tuple(str(d) for d in listed),
    )


def _outage_values(state: OutageState) -> dict[str, Any]:
    if not state.open:
        # SQL NULLs, not JSON null: `outage_since IS NULL` is what "no outage" means.
        return {
            "outage_since": None,
            "outage_note_ts": None,
            "outage_thread_ts": None,
            "outage_listed": null(),
        }
    return {
        "outage_since": state.since,
        "outage_note_ts": state.note_ts,
        "outage_thread_ts": state.thread_ts,
        "outage_listed": list(state.listed),
    }


def _state(m: Any) -> TargetState:
    """The stored state, with the buttons' snooze copied in where it still applies.

    A snooze applies while the job it was pressed on is still the current one: the check that
    sees a new job ends it (with a note, see bot.watch.lifecycle) and the next check no longer
    finds it applying, so the check never has to write the buttons' columns.
    """
    raw = m["state"] if isinstance(m["state"], dict) else {}
    state = TargetState.load(raw)
    incident = state.incident
    if not raw.get("incident") and incident.job_id is None and m["job_id"]:
        # A state stored before incidents: the row's job is the baseline, not a new job.
        incident = incident.model_copy(update={"job_id": m["job_id"]})
    until, redeploy = m["snoozed_until"], bool(m["snoozed_until_redeploy"])
    applies = (until is not None or redeploy) and m["snoozed_job_id"] == incident.job_id
    if not applies:
        until, redeploy = None, False
    incident = incident.model_copy(update={"snoozed_until": until, "snoozed_until_redeploy": redeploy})
    # model_validate (not copy): naive datetimes from the store become UTC
    incident = type(incident).model_validate(incident.model_dump())
    return state.model_copy(update={"incident": incident, "snoozed_until": incident.snoozed_until})


class WatchStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.owner = owner or secrets.token_hex(6)  # this replica
        self.lease_seconds = lease_seconds

    # ------------------------------------------------------------------ watches (commands)
    async def add_watch(
        self,
        *,
        team_id: str,
        channel_id: str,
        kind: str,
        workspace: str,
        namespace: str,
        deployment_id: str | None,
        deployment_name: str | None,
        min_risk: str,
        interval_seconds: int,
        created_by: str,
        now: float,
        failures: bool = True,
        restarts: int | None = 3,
        min_health: int | None = None,
    ) -> Watch:
        """Add a watch; its first check (or namespace listing) is due at once. DuplicateWatch if it exists."""
        same = select(*_w.c).where(
            _w.c.team_id == team_id,
            _w.c.channel_id == channel_id,
            _w.c.workspace == workspace,
            _w.c.target_key == target_key(kind, namespace, deployment_id),
        )
        try:
            async with self._sessions.begin() as session:
                existing = (await session.execute(same)).one_or_none()
                if existing is not None:
                    raise DuplicateWatch(_watch(existing._mapping))
                row = (
                    await session.execute(
                        insert(_w)
                        .values(
                            team_id=team_id,
                            channel_id=channel_id,
                            kind=kind,
                            target_key=target_key(kind, namespace, deployment_id),
                            workspace=workspace,
                            namespace=namespace,
                            deployment_id=deployment_id,
                            deployment_name=deployment_name,
                            min_risk=min_risk,
                            failures=failures,
                            restarts=restarts,
                            min_health=min_health,
                            interval_seconds=interval_seconds,
                            created_by=created_by,
                            created_at=self._clock(),
                            next_expand_at=now if kind == "namespace" else None,
                        )
                        .returning(*_w.c)
                    )
                ).one()
                watch = _watch(row._mapping)
                if kind == "deployment":
                    await session.execute(
                        insert(_t).values(
                            watch_id=watch.id,
                            deployment_id=deployment_id,
                            deployment_name=deployment_name,
                            interval_seconds=interval_seconds,
                            state={},
                            next_check_at=now,
                        )
                    )
        except IntegrityError:
            # Another replica added the same watch between our look and our insert (on
            # PostgreSQL both transactions run at once; the unique constraint decides).
            async with self._sessions() as session:
                existing = (await session.execute(same)).one_or_none()
            if existing is None:
                raise
            raise DuplicateWatch(_watch(existing._mapping)) from None
        return watch

    async def list_watches(self, team_id: str, channel_id: str) -> list[Watch]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(*_w.c).where(_w.c.team_id == team_id, _w.c.channel_id == channel_id).order_by(_w.c.id)
            )
            return [_watch(r._mapping) for r in rows]

    async def find_watches(self, team_id: str, channel_id: str, kind: str, ref: str) -> list[Watch]:
        """This channel's watches of `kind` whose deployment name/id (or namespace) is `ref`."""
        cond = (
            _w.c.namespace == ref
            if kind == "namespace"
            else or_(_w.c.deployment_id == ref, _w.c.deployment_name == ref)
        )
        async with self._sessions() as session:
            rows = await session.execute(
                select(*_w.c).where(
                    _w.c.team_id == team_id, _w.c.channel_id == channel_id, _w.c.kind == kind, cond
                )
            )
            return [_watch(r._mapping) for r in rows]

    async def remove_watch(self, watch_id: int) -> bool:
        async with self._sessions.begin() as session:
            await session.execute(delete(_t).where(_t.c.watch_id == watch_id))
            res = await session.execute(delete(_w).where(_w.c.id == watch_id))
            return bool(res.rowcount)

    async def targets_of(self, watch_ids: list[int]) -> dict[int, list[WatchTarget]]:
        out: dict[int, list[WatchTarget]] = {w: [] for w in watch_ids}
        if not watch_ids:
            return out
        async with self._sessions() as session:
            rows = await session.execute(
                self._target_select().where(_t.c.watch_id.in_(watch_ids)).order_by(_t.c.id)
            )
            for r in rows:
                t = self._target(r._mapping)
                out[t.watch_id].append(t)
        return out

    async def target(self, target_id: int) -> WatchTarget | None:
        async with self._sessions() as session:
            row = (await session.execute(self._target_select().where(_t.c.id == target_id))).one_or_none()
        return self._target(row._mapping) if row else None

    async def snooze(
        self,
        target_id: int,
        until: datetime | None,
        *,
        redeploy: bool = False,
        job_id: str | None = None,
    ) -> WatchTarget | None:
        """Snooze until `until` or (`redeploy`) until a new job; `job_id` is the job it is pressed on."""
        values = {"snoozed_until": until, "snoozed_until_redeploy": redeploy, "snoozed_job_id": job_id}
        async with self._sessions.begin() as session:
            await session.execute(update(_t).where(_t.c.id == target_id).values(**values))
        return await self.target(target_id)

    async def mute(self, target_id: int) -> WatchTarget | None:
        async with self._sessions.begin() as session:
            await session.execute(update(_t).where(_t.c.id == target_id).values(muted=True))
        return await self.target(target_id)

    async def pause_channel(self, team_id: str, channel_id: str, reason: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(_w)
                .where(_w.c.team_id == team_id, _w.c.channel_id == channel_id)
                .values(paused_reason=reason)
            )
            await session.execute(
                update(_r)
                .where(_r.c.team_id == team_id, _r.c.channel_id == channel_id)
                .values(paused_reason=reason)
            )

    async def resume_channel(self, team_id: str, channel_id: str) -> int:
        """Clear a pause (someone used the bot in the channel, so it can post there again)."""
        async with self._sessions.begin() as session:
            res = await session.execute(
                update(_w)
                .where(
                    _w.c.team_id == team_id, _w.c.channel_id == channel_id, _w.c.paused_reason.is_not(None)
                )
                .values(paused_reason=None)
            )
            await session.execute(
                update(_r)
                .where(
                    _r.c.team_id == team_id, _r.c.channel_id == channel_id, _r.c.paused_reason.is_not(None)
                )
                .values(paused_reason=None)
            )
            return int(res.rowcount or 0)

    # ------------------------------------------------------------------ the sweep
    def _target_select(self) -> Any:
        return select(
            *_t.c,
            _w.c.team_id,
            _w.c.channel_id,
            _w.c.workspace,
            _w.c.namespace,
            _w.c.min_risk,
            _w.c.failures,
            _w.c.restarts,
            _w.c.min_health,
        ).join(_w, _w.c.id == _t.c.watch_id)

    @staticmethod
    def _target(m: Any) -> WatchTarget:
        skip = {"state", "muted", "anchor_shared", "failures"}
        columns = {k: m[k] for k in WatchTarget.model_fields if k not in skip}
        return WatchTarget(
            **columns,
            state=_state(m),
            muted=bool(m["muted"]),
            anchor_shared=bool(m["anchor_shared"]),
            failures=bool(m["failures"]),
        )

    async def claim_due_targets(
        self, now: float, limit: int, *, due_by: float | None = None
    ) -> list[WatchTarget]:
        """Take up to `limit` targets of unpaused watches that were due by `due_by` (default `now`)
        and hold no live lease, for this replica, oldest due first.

        A sweep passes its start as `due_by`: what falls due while it runs is the next sweep's, so
        a sweep longer than an interval still ends.
        """
        due_by = now if due_by is None else due_by
        active = select(_w.c.id).where(_w.c.paused_reason.is_(None))
        due = (
            select(_t.c.id)
            .where(
                _t.c.next_check_at <= due_by,
                _t.c.muted.is_(False),
                or_(_t.c.lease_until.is_(None), _t.c.lease_until < now),
                _t.c.watch_id.in_(active),
            )
            .order_by(_t.c.next_check_at)
            .limit(limit)
            # PostgreSQL: rows another replica is claiming right now are passed over instead of
            # waited on, so its claim takes the next ones rather than coming back empty once the
            # other commits. SQLite renders no FOR UPDATE (its writers are serialised anyway).
            .with_for_update(skip_locked=True)
        )
        async with self._sessions.begin() as session:
            claimed = (
                (
                    await session.execute(
                        update(_t)
                        .where(
                            _t.c.id.in_(due.scalar_subquery()),
                            # repeated so PostgreSQL's re-check after a concurrent update excludes it
                            _t.c.next_check_at <= due_by,
                            or_(_t.c.lease_until.is_(None), _t.c.lease_until < now),
                        )
                        .values(
                            next_check_at=now + self.lease_seconds,
                            lease_owner=self.owner,
                            lease_until=now + self.lease_seconds,
                            claimed_at=now,
                        )
                        .returning(_t.c.id)
                    )
                )
                .scalars()
                .all()
            )
            if not claimed:
                return []
            rows = await session.execute(
                self._target_select().where(_t.c.id.in_(claimed)).order_by(_t.c.next_check_at, _t.c.id)
            )
            return [self._target(r._mapping) for r in rows]

    async def renew_leases(self, target_ids: Sequence[int], now: float) -> set[int]:
        """Extend this replica's leases on `target_ids` (checks still queued or running) to
        `now` + the lease; returns the ids still held (a lease already taken over is not)."""
        if not target_ids:
            return set()
        ids = sorted(target_ids)
        async with self._sessions.begin() as session:
            # Rows locked in id order first, as record_checks does: a renewal and a record of the
            # same replica, in two transactions at once, must not deadlock.
            held = list(
                (
                    await session.execute(
                        select(_t.c.id)
                        .where(_t.c.id.in_(ids), _t.c.lease_owner == self.owner)
                        .order_by(_t.c.id)
                        .with_for_update()
                    )
                ).scalars()
            )
            if held:
                await session.execute(
                    update(_t)
                    .where(_t.c.id.in_(held), _t.c.lease_owner == self.owner)
                    .values(lease_until=now + self.lease_seconds, next_check_at=now + self.lease_seconds)
                )
        return set(held)

    async def record_checks(self, records: Sequence[CheckRecord]) -> set[int]:
        """Persist several checks' outcomes in one transaction; returns the target ids that landed.

        A record lands only while this replica holds the target's lease. One transaction with an
        executemany costs about 0.02-0.1 ms per record against 1.2-1.8 ms for a transaction of
        its own (bench/sweep.py, SQLite and PostgreSQL), which is what lets a sweep keep up.
        """
        if not records:
            return set()
        ids = [r.target_id for r in records]
        async with self._sessions.begin() as session:
            # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes other writers): no
            # claim can take a lease over between this read and the writes, so `held` is exact.
            held = set(
                (
                    await session.execute(
                        select(_t.c.id)
                        .where(_t.c.id.in_(ids), _t.c.lease_owner == self.owner)
                        .order_by(_t.c.id)  # one lock order for every replica
                        .with_for_update()
                    )
                ).scalars()
            )
            rows = [
                {
                    "b_id": r.target_id,
                    "b_owner": self.owner,
                    # The snooze column is owned by the Snooze buttons: a check never writes it,
                    # so a snooze pressed during a check is not overwritten; an expired one is
                    # cleared below.
                    "b_state": r.state.model_dump(mode="json", exclude={"snoozed_until"}),
                    "b_anchor_ts": r.anchor_ts,
                    "b_anchor_shared": r.anchor_shared,
                    "b_job_id": r.job_id,
                    "b_top_symptom": r.top_symptom,
                }
                for r in records
                if r.target_id in held
            ]
            if rows:
                await session.execute(_RECORD, rows)  # one executemany
                await settle(session, [r for r in records if r.target_id in held])
            await session.execute(
                update(_t)
                .where(_t.c.id.in_(ids), _t.c.snoozed_until.is_not(None), _t.c.snoozed_until <= self._clock())
                .values(snoozed_until=None)
            )
        return held

    # ------------------------------------------------------------------ outages
    async def outage_views(self, touched: Sequence[int], relevant: Sequence[int]) -> list[OutageView]:
        """Unpaused watches among `touched` that are in `relevant` or in an outage, with their
        targets (muted ones left out: they are not checked)."""
        if not touched:
            return []
        async with self._sessions() as session:
            watches = (
                await session.execute(
                    select(*_w.c)
                    .where(
                        _w.c.id.in_(list(touched)),
                        _w.c.paused_reason.is_(None),
                        or_(_w.c.id.in_(list(relevant)), _w.c.outage_since.is_not(None)),
                    )
                    .order_by(_w.c.id)
                )
            ).all()
            if not watches:
                return []
            rows = await session.execute(
                self._target_select()
                .where(_t.c.watch_id.in_([w.id for w in watches]), _t.c.muted.is_(False))
                .order_by(_t.c.id)
            )
            targets: dict[int, list[WatchTarget]] = {}
            for r in rows:
                t = self._target(r._mapping)
                targets.setdefault(t.watch_id, []).append(t)
        return [
            OutageView(
                watch=_watch(w._mapping), version=int(w.outage_version or 0), targets=targets.get(w.id, [])
            )
            for w in watches
        ]

    async def claim_outage(self, watch_id: int, version: int, now: float) -> bool:
        """A lease on the outage while its note is posted, taken only at the version decided on:
        of the replicas (or sweeps) that decided on the same state, exactly one acts. The version
        moves when the outcome is recorded (`finish_outage`), not here: a replica that dies while
        posting leaves the version as it was, so the next claim posts under the same key and
        finds the earlier post (bot.slack.notifier)."""
        async with self._sessions.begin() as session:
            res = await session.execute(
                update(_w)
                .where(
                    _w.c.id == watch_id,
                    _w.c.outage_version == version,
                    or_(_w.c.outage_lease_until.is_(None), _w.c.outage_lease_until < now),
                )
                .values(
                    outage_lease_owner=self.owner,
                    outage_lease_until=now + OUTAGE_LEASE_SECONDS,
                )
            )
            return bool(res.rowcount)

    async def finish_outage(self, watch_id: int, state: OutageState | None) -> None:
        values: dict[str, Any] = {"outage_lease_owner": None, "outage_lease_until": None}
        if state is not None:
            values |= _outage_values(state) | {"outage_version": _w.c.outage_version + 1}
        async with self._sessions.begin() as session:
            await session.execute(
                update(_w).where(_w.c.id == watch_id, _w.c.outage_lease_owner == self.owner).values(**values)
            )

    async def claim_due_namespace_watches(self, now: float) -> list[Watch]:
        async with self._sessions.begin() as session:
            rows = await session.execute(
                update(_w)
                .where(_w.c.kind == "namespace", _w.c.paused_reason.is_(None), _w.c.next_expand_at <= now)
                .values(next_expand_at=now + _w.c.interval_seconds)
                .returning(*_w.c)
            )
            return [_watch(r._mapping) for r in rows]

    async def sync_namespace_targets(
        self, watch: Watch, deployments: list[tuple[str, str | None]], now: float
    ) -> None:
        """Make the namespace watch's targets match the namespace's deployments (new ones due now)."""
        ids = {d for d, _ in deployments}
        async with self._sessions.begin() as session:
            if deployments:
                stmt = dialect_insert(session)(_t).values(
                    [
                        {
                            "watch_id": watch.id,
                            "deployment_id": dep_id,
                            "deployment_name": name,
                            "interval_seconds": watch.interval_seconds,
                            "state": {},
                            "next_check_at": now,
                        }
                        for dep_id, name in deployments
                    ]
                )
                await session.execute(
                    stmt.on_conflict_do_nothing(index_elements=["watch_id", "deployment_id"])
                )
            gone = delete(_t).where(_t.c.watch_id == watch.id)
            if ids:
                gone = gone.where(_t.c.deployment_id.not_in(ids))
            await session.execute(gone)

    async def channel_targets(self, team_id: str, channel_id: str) -> list[WatchTarget]:
        async with self._sessions() as session:
            rows = await session.execute(
                self._target_select()
                .where(_w.c.team_id == team_id, _w.c.channel_id == channel_id)
                .order_by(_t.c.id)
            )
            return [self._target(r._mapping) for r in rows]

    # ------------------------------------------------------------------ reports
    @staticmethod
    def _schedule(m: Any) -> ReportSchedule:
        return ReportSchedule.model_validate({k: m[k] for k in ReportSchedule.model_fields})

    async def set_report(
        self,
        team_id: str,
        channel_id: str,
        *,
        mode: str,
        hour: int | None,
        minute: int | None,
        tz: str | None,
        next_due_at: float | None,
        updated_by: str,
    ) -> ReportSchedule:
        values = {
            "mode": mode,
            "hour": hour,
            "minute": minute,
            "tz": tz,
            "next_due_at": next_due_at,
            "updated_by": updated_by,
            "updated_at": self._clock(),
            "paused_reason": None,
        }
        async with self._sessions.begin() as session:
            stmt = dialect_insert(session)(_r).values(team_id=team_id, channel_id=channel_id, **values)
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["team_id", "channel_id"], set_=values)
            )
        got = await self.get_report(team_id, channel_id)
        assert got is not None
        return got

    async def get_report(self, team_id: str, channel_id: str) -> ReportSchedule | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(*_r.c).where(_r.c.team_id == team_id, _r.c.channel_id == channel_id)
                )
            ).one_or_none()
        return self._schedule(row._mapping) if row else None

    async def due_reports(self, now: float) -> list[ReportSchedule]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(*_r.c).where(
                    _r.c.next_due_at.is_not(None), _r.c.next_due_at <= now, _r.c.paused_reason.is_(None)
                )
            )
            return [self._schedule(r._mapping) for r in rows]

    async def claim_report(self, schedule: ReportSchedule, next_due_at: float | None) -> bool:
        """Compare-and-set the schedule's due time: True for exactly one replica."""
        async with self._sessions.begin() as session:
            res = await session.execute(
                update(_r)
                .where(
                    _r.c.team_id == schedule.team_id,
                    _r.c.channel_id == schedule.channel_id,
                    _r.c.next_due_at == schedule.next_due_at,
                )
                .values(next_due_at=next_due_at)
            )
            return bool(res.rowcount)

    async def record_report(
        self, team_id: str, channel_id: str, snapshot: dict[str, Any], sent_at: datetime
    ) -> None:
        values = {"last_snapshot": snapshot, "last_sent_at": sent_at}
        async with self._sessions.begin() as session:
            stmt = dialect_insert(session)(_r).values(
                team_id=team_id, channel_id=channel_id, mode="off", updated_at=sent_at, **values
            )
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["team_id", "channel_id"], set_=values)
            )
