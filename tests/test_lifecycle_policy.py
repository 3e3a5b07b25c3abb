"""The incident policy (bot/watch/lifecycle.py): a table of cases, then every sequence of checks.

Tokens, one check each (STEP apart), on one deployment whose current job the harness keeps:
  ok    running, risk LOW, health 90, no new restart
  mid   running, risk MID          high  running, risk HIGH
  sick  running, LOW, health 50    loop  running, 5 more restarts than the last check
  fail  FAILED (its status still carries HIGH and 35, as the service's does)
  stop  CANCELLED by the user      gone  the deployment has no job
  new   a new job id (a restart or redeploy): running, LOW, 90, restarts 0
and two that are not checks but what a user does before the next one:
  Z     Snooze until redeploy      H     Snooze 1h
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.watch.lifecycle import (
    Action,
    ChangeKind,
    Condition,
    Decision,
    IncidentState,
    JobObservation,
    Reason,
    Settings,
    band,
    decide,
    snooze,
    worst,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=20)  # three checks span the restart window, so "N starts in an hour" is reachable
SETTINGS = Settings(min_risk="mid", restarts=2, min_health=60)
CHECKS = ("ok", "mid", "high", "sick", "loop", "fail", "stop", "gone", "new")
USER = ("Z", "H")


@dataclass
class World:
    """The deployment the tokens describe, plus everything a Slack channel would have seen."""

    settings: Settings = SETTINGS
    state: IncidentState | None = None
    at: datetime = T0
    job: int = 1
    restarts: int = 0
    decisions: list[Decision] = field(default_factory=list)
    threads: list[list[Decision]] = field(default_factory=list)  # one per incident, root first
    open_idx: int | None = None  # index of the open incident's thread
    snooze_end: datetime | None = None  # the harness's own idea of the snooze, for the properties
    snooze_redeploy: bool = False
    last_job_seen: str | None = None
    checked: bool = False

    def observation(self, token: str) -> JobObservation:
        if token == "new":
            self.job += 1
            self.restarts = 0
        if token == "loop":
            self.restarts += 5
        job_id = f"job-{self.job}"
        base = {"at": self.at, "job_id": job_id, "restarts": self.restarts}
        running = base | {"status": "RUNNING", "risk": "RISK_LEVEL_LOW", "health_score": 90}
        return {
            "ok": lambda: JobObservation(**running),
            "new": lambda: JobObservation(**running),
            "loop": lambda: JobObservation(**running),
            "mid": lambda: JobObservation(**running | {"risk": "RISK_LEVEL_MID"}),
            "high": lambda: JobObservation(**running | {"risk": "RISK_LEVEL_HIGH"}),
            "sick": lambda: JobObservation(**running | {"health_score": 50}),
            "fail": lambda: JobObservation(
                **base | {"status": "FAILED", "restarts": None, "risk": "HIGH", "health_score": 35}
            ),
            "stop": lambda: JobObservation(**base | {"status": "CANCELLED", "restarts": None}),
            "gone": lambda: JobObservation(at=self.at),
        }[token]()

    def step(self, token: str) -> Decision | None:
        if token == "Z":
            self.state = snooze(self.state, redeploy=True)
            self.snooze_redeploy, self.snooze_end = True, None
            return None
        if token == "H":
            self.state = snooze(self.state, until=self.at + timedelta(hours=1))
            self.snooze_redeploy, self.snooze_end = False, self.at + timedelta(hours=1)
            return None
        obs = self.observation(token)
        job_started = self.checked and obs.job_id is not None and obs.job_id != self.last_job_seen
        snoozed_before = self.snooze_redeploy or (self.snooze_end is not None and self.snooze_end > self.at)
        prev = self.state or IncidentState()
        d = decide(self.state, obs, self.settings, now=self.at)
        check_properties(self, prev, d, obs, snoozed_before=snoozed_before, job_started=job_started)
        if job_started or not snoozed_before:
            self.snooze_redeploy, self.snooze_end = False, None
        self.last_job_seen, self.checked = obs.job_id, True
        self.state = d.state
        self.decisions.append(d)
        self.at += STEP
        return d


# --- the properties, checked after every check


def check_properties(
    w: World,
    prev: IncidentState,
    d: Decision,
    obs: JobObservation,
    *,
    snoozed_before: bool,
    job_started: bool,
) -> None:
    kinds = [c.kind for c in d.changes]
    # No post without a change, and no change without a post.
    assert d.posts == bool(d.changes), d
    if d.action is Action.NONE:
        assert (d.state.announced, d.state.root, d.state.root_level) == (
            prev.announced,
            prev.root,
            prev.root_level,
        )

    # A snoozed incident posts nothing until the snooze ends or the job changes.
    if snoozed_before and not job_started:
        assert d.action is Action.NONE, (d.reason, d.suppressed)
    if snoozed_before and job_started and prev.incident_open and d.posts:
        assert kinds[0] is ChangeKind.SNOOZE_ENDED
    if ChangeKind.SNOOZE_ENDED in kinds:
        assert job_started and snoozed_before and prev.incident_open

    # Never two open incidents: a root only when none is open, a reply only into the open one.
    if d.action is Action.POST_ROOT:
        assert not prev.incident_open and w.open_idx is None
        w.threads.append([d])
        w.open_idx = len(w.threads) - 1
    elif d.action in (Action.POST_FOLLOWUP, Action.UPDATE_ROOT):
        assert prev.incident_open and w.open_idx is not None
        w.threads[w.open_idx].append(d)
    if d.reason is Reason.BACK_TO_NORMAL:
        assert d.action is Action.POST_FOLLOWUP and not d.state.incident_open and d.root is None
        w.open_idx = None
    assert d.state.incident_open == (w.open_idx is not None)

    # The root always shows the worst open condition.
    if d.state.incident_open:
        assert d.root in d.state.announced
        assert d.root == d.open_conditions[0] or (
            d.root is Condition.HEALTH and d.open_conditions[0] is Condition.RISK
        )
        assert worst({c: _level(d.state, c) for c in d.state.announced})[0] == d.root
    else:
        assert d.root is None and d.open_conditions == ()

    # A failure is a fact: told at once, and while it is told the job is failed or not yet settled.
    if d.action is not Action.NONE:
        assert (Condition.FAILED in d.state.announced) == (obs.status == "FAILED")
    # What is told is what is true, once a check is not snoozed.
    if not (snoozed_before and not job_started) and d.action is not Action.NONE:
        assert _risk_ok(d, w.settings)

    # The stored form is compact JSON and reads back to the same state.
    dumped = d.state.dump()
    assert json.loads(dumped) is not None
    assert IncidentState.load(dumped) == d.state


def _level(s: IncidentState, c: Condition) -> str | None:
    return s.root_level if c is s.root else None


def _risk_ok(d: Decision, settings: Settings) -> bool:
    from bot.diagnosis.risk import Risk

    at_or_above = Risk(d.state.confirmed_risk).rank >= Risk(settings.min_risk).rank
    return (Condition.RISK in d.state.announced) == at_or_above


def calm_down(w: World) -> None:
    """Checks that end every condition and every snooze: the incident must close exactly once."""
    for token in ("new", "ok", "ok", "ok", "ok", "ok"):
        w.step(token)
    assert w.state is not None and not w.state.incident_open
    for thread in w.threads:
        closes = [d for d in thread if d.reason is Reason.BACK_TO_NORMAL]
        assert len(closes) == 1 and thread[-1] is closes[0], [d.reason for d in thread]


# --- every sequence up to length 5

ALPHABETS = [
    ("risk and health with snoozes", ("ok", "mid", "high", "sick", "Z", "H"), SETTINGS),
    (
        "status, restarts, job changes with snoozes",
        ("ok", "loop", "fail", "stop", "gone", "new", "Z"),
        SETTINGS,
    ),
    ("a bit of everything", ("high", "sick", "loop", "fail", "new", "H"), SETTINGS),
    ("default settings", ("ok", "mid", "high", "loop", "fail", "new"), Settings()),
    (
        "conditions off",
        ("high", "sick", "loop", "fail", "new", "Z"),
        Settings(min_risk="high", restarts=None),
    ),
]


def _explore(w: World, tokens: tuple[str, ...], depth: int, seen: set[tuple], counter: list[int]) -> None:
    for token in tokens:
        child = _copy(w)
        child.step(token)
        counter[0] += 1
        if depth > 1:
            _explore(child, tokens, depth - 1, seen, counter)
            continue
        # The calm-down from a leaf depends only on this; the same one needs checking once.
        key = (
            child.state.dump() if child.state else None,
            child.job,
            child.restarts,
            child.snooze_end,
            child.snooze_redeploy,
            child.last_job_seen,
            child.open_idx is not None,
        )
        if key not in seen:
            seen.add(key)
            calm_down(child)


def _copy(w: World) -> World:
    return replace(w, decisions=list(w.decisions), threads=[list(t) for t in w.threads])


@pytest.mark.parametrize(("tokens", "settings"), [a[1:] for a in ALPHABETS], ids=[a[0] for a in ALPHABETS])
def test_every_sequence_up_to_length_five_keeps_the_invariants(
    tokens: tuple[str, ...], settings: Settings
) -> None:
    counter = [0]
    _explore(World(settings=settings), tokens, 5, set(), counter)
    assert counter[0] == sum(len(tokens) ** k for k in range(1, 6))


# --- the table


def run(tokens: list[str], settings: Settings = SETTINGS) -> list[tuple[str, str, list[str]]]:
    w = World(settings=settings)
    out = []
    for t in tokens:
        d = w.step(t)
        if d is not None:
            out.append((d.reason.value, d.action.value, [c.kind.value for c in d.changes]))
    return out


QUIET = ("quiet", "none", [])
SAME = ("unchanged", "none", [])
SNOOZED = ("snoozed", "none", [])


def opened(*kinds: str) -> tuple[str, str, list[str]]:
    return ("new_incident", "post_root", list(kinds))


def changed(*kinds: str) -> tuple[str, str, list[str]]:
    return ("changed", "post_followup", list(kinds))


def normal(*kinds: str) -> tuple[str, str, list[str]]:
    return ("back_to_normal", "post_followup", list(kinds))


CASES = [
    ("nothing wrong is quiet", ["ok", "ok"], [QUIET, QUIET]),
    ("a failure alerts at once, even at first sight", ["fail"], [opened("job_failed")]),
    (
        "a failed job stays one incident",
        ["ok", "fail", "fail", "fail"],
        [QUIET, opened("job_failed"), SAME, SAME],
    ),
    ("running again closes a failure", ["fail", "new"], [opened("job_failed"), normal("running_again")]),
    ("a cancelled job is not a failure", ["ok", "stop", "gone"], [QUIET, QUIET, QUIET]),
    (
        "a failed job the user cancels ends the failure without 'running again'",
        ["fail", "stop"],
        [opened("job_failed"), normal("failure_ended")],
    ),
    (
        "a failure during an open risk incident goes to the same thread",
        ["high", "fail", "new", "ok", "ok"],
        [
            opened("risk_raised"),
            changed("job_failed"),
            changed("running_again"),
            normal("risk_cleared"),
            QUIET,
        ],
    ),
    (
        "MID needs a second sighting",
        ["mid", "mid", "ok", "ok"],
        [QUIET, opened("risk_raised"), SAME, normal("risk_cleared")],
    ),
    (
        "a rise within the incident is a reply",
        ["mid", "mid", "high"],
        [QUIET, opened("risk_raised"), changed("risk_rose")],
    ),
    (
        "falling back within what was told only edits the root",
        ["high", "mid", "mid"],
        [opened("risk_raised"), SAME, ("root_update", "update_root", [])],
    ),
    (
        "restarts growing by N between checks",
        ["ok", "loop", "ok"],
        [QUIET, opened("restarting"), normal("restarts_stopped")],
    ),
    (
        "N new jobs within the window is a restart loop; it ends when the window passes",
        ["ok", "new", "new", "ok", "ok", "ok", "ok"],
        [QUIET, QUIET, opened("restarting"), SAME, normal("restarts_stopped"), QUIET, QUIET],
    ),
    ("restarts counted at first sight are a baseline", ["loop", "ok"], [QUIET, QUIET]),
    (
        "health below S twice opens, above S closes",
        ["sick", "sick", "ok"],
        [QUIET, opened("health_low"), normal("health_recovered")],
    ),
    ("one low health score is not enough", ["sick", "ok", "sick", "ok"], [QUIET] * 4),
    (
        "a stopped deployment says so once per incident",
        ["high", "stop", "stop", "gone"],
        [opened("risk_raised"), changed("no_running_job"), SAME, SAME],
    ),
    (
        "snooze until redeploy: quiet until a new job, which ends it with a note",
        ["high", "Z", "fail", "fail", "new", "ok", "ok"],
        [
            opened("risk_raised"),
            SNOOZED,
            SNOOZED,
            changed("snooze_ended"),  # the failure opened and ended while snoozed: never told
            normal("risk_cleared"),
            QUIET,
        ],
    ),
    (
        "a 1h snooze that runs out ends quietly and the catch-up tells what is still true",
        ["mid", "mid", "H", "high", "high", "high", "high"],
        [QUIET, opened("risk_raised"), SNOOZED, SNOOZED, SNOOZED, changed("risk_rose")],
    ),
    (
        "what opened and closed during a snooze is never posted",
        ["high", "Z", "fail", "stop", "new"],
        [opened("risk_raised"), SNOOZED, SNOOZED, changed("snooze_ended")],
    ),
    (
        "a snooze without an open incident ends quietly",
        ["ok", "Z", "new", "ok"],
        [QUIET, QUIET, QUIET],
    ),
    (
        "after back to normal a new incident is a new root",
        ["fail", "new", "fail"],
        [opened("job_failed"), normal("running_again"), opened("job_failed")],
    ),
    (
        "conditions changing at once are one message, worst first",
        ["sick", "sick", "loop"],
        [QUIET, opened("health_low"), changed("restarting", "health_recovered")],
    ),
]


@pytest.mark.parametrize(("tokens", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(tokens: list[str], expected: list[tuple[str, str, list[str]]]) -> None:
    assert run(tokens) == expected


def test_off_settings_turn_conditions_off() -> None:
    off = Settings(min_risk=None, failures=False, restarts=None, min_health=None)
    assert run(["high", "fail", "loop", "sick", "sick", "new", "new", "new"], off) == [QUIET] * 8


def test_the_root_shows_the_worst_open_condition() -> None:
    w = World()
    w.step("high")
    assert (w.decisions[-1].root, w.decisions[-1].root_level) == (Condition.RISK, "RISK_LEVEL_HIGH")
    d = w.step("loop")
    assert d is not None and d.root is Condition.RESTARTING
    assert list(d.open_conditions) == [Condition.RESTARTING, Condition.RISK]
    d = w.step("fail")
    assert d is not None and d.root is Condition.FAILED
    # A failed job is no longer restarting: both go out in one reply, worst first.
    assert list(d.open_conditions) == [Condition.FAILED, Condition.RISK]
    assert [c.kind for c in d.changes] == [ChangeKind.JOB_FAILED, ChangeKind.RESTARTS_STOPPED]
    # Health outranks a lower risk: unhealthy (rank 3) over MID (rank 2).
    assert worst({Condition.RISK: "RISK_LEVEL_MID", Condition.HEALTH: "unhealthy"})[0] is Condition.HEALTH
    assert worst({Condition.RISK: "RISK_LEVEL_HIGH", Condition.HEALTH: "unhealthy"})[0] is Condition.RISK


def test_restart_change_carries_the_count_and_the_window_count() -> None:
    w = World()
    w.step("ok")
    d = w.step("loop")
    assert d is not None and d.changes[0].restarts == 5
    w2 = World()
    for t in ["ok", "new"]:
        w2.step(t)
    d = w2.step("new")
    assert d is not None and d.changes[0].kind is ChangeKind.RESTARTING and d.changes[0].starts == 2


def test_a_post_that_failed_is_tried_again_at_the_next_check() -> None:
    w = World()
    d = w.step("fail")
    assert d is not None
    w.state = d.state_if_not_done  # Slack was down
    again = decide(w.state, w.observation("fail"), SETTINGS, now=w.at)
    assert again.action is Action.POST_ROOT


def test_a_snooze_ended_note_survives_a_failed_post() -> None:
    w = World()
    for t in ["high", "Z"]:
        w.step(t)
    d = w.step("new")
    assert d is not None and d.changes[0].kind is ChangeKind.SNOOZE_ENDED
    again = decide(d.state_if_not_done, w.observation("ok"), SETTINGS, now=w.at)
    assert again.changes[0].kind is ChangeKind.SNOOZE_ENDED


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (None, "unknown"),
        (100, "healthy"),
        (81, "healthy"),
        (80, "degraded"),
        (60, "degraded"),
        (59, "unhealthy"),
    ],
)
def test_band(score: int | None, label: str) -> None:
    assert band(score).label == label


def test_state_takes_odd_values_safely() -> None:
    odd = {
        "checked_at": "yesterday",
        "job_id": 42,
        "restarts": -4,
        "starts": ["2026-03-01T08:00:00", "nonsense", 7, "2026-03-01T08:30:00+00:00"],
        "failed": "maybe",
        "announced": ["risk", "bogus", "risk", "failed"],
        "announced_risk": "medium",
        "announced_band": "fine",
        "root": "on fire",
        "pending_count": "x",
        "snoozed_until": "2026-03-01T10:00:00",
        "unknown_field": 1,
    }
    s = IncidentState.load(odd)
    assert s.checked_at is None and s.restarts == 0 and s.failed is False and s.pending_count == 0
    assert s.announced == (Condition.FAILED, Condition.RISK)
    assert s.announced_risk == "RISK_LEVEL_MID" and s.announced_band is None and s.root is None
    assert [t.tzinfo for t in s.starts] == [UTC, UTC] and s.snoozed_until.tzinfo is UTC  # type: ignore[union-attr]
    for raw in (None, "", "not json", "[1, 2]", 3, b"{}"):
        assert IncidentState.load(raw) == IncidentState()
    # Compact: a fresh state is "{}", and a quiet deployment's state stays small.
    assert IncidentState().dump() == "{}"
    d = decide(None, JobObservation(at=T0, job_id="j", status="running", restarts=0, risk="low"), now=T0)
    assert len(d.state.dump()) < 120


def test_observation_normalises_what_the_api_sent() -> None:
    o = JobObservation(
        at=datetime(2026, 3, 1), job_id="  ", status=" failed ", restarts="-1", risk=7, health_score="71.9"
    )
    assert (o.job_id, o.status, o.restarts, o.risk, o.health_score) == (None, "FAILED", None, None, 71)
    assert o.at.tzinfo is UTC and not o.has_job
