"""The per-watch outage rule (bot.watch.outage), table-driven and pure.

Each row is a watch's targets over successive decisions, one token per target per step:
"f" the target's check failed, "ok" it worked, "z" failed while snoozed, "-" not checked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.watch.outage import (
    OutageAction,
    OutageReason,
    OutageState,
    TargetHealth,
    decide_outage,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)

NO = OutageReason.NO_OUTAGE
OPEN = OutageReason.CANNOT_CHECK
EDIT = OutageReason.CANNOT_CHECK_CHANGED
SAME = OutageReason.STILL_CANNOT_CHECK
OVER = OutageReason.CHECKING_AGAIN


def walk(
    steps: list[list[str]], *, kind: str = "namespace", threshold: int = 3, recovery: int = 3
) -> list[tuple[OutageReason, tuple[str, ...]]]:
    """Feed each step's checks into per-target counters, decide, persist as the engine would."""
    n = len(steps[0])
    streak = [0] * n
    since: list[int | None] = [None] * n
    snoozed = [False] * n
    state = OutageState()
    out = []
    for i, tokens in enumerate(steps):
        for k, tok in enumerate(tokens):
            snoozed[k] = tok == "z"
            if tok in ("f", "z"):
                streak[k], since[k] = streak[k] + 1, 0
            elif tok == "ok":
                streak[k] = 0
                since[k] = None if since[k] is None else since[k] + 1
        health = [
            TargetHealth(
                deployment_id=f"d{k}",
                failure_streak=streak[k],
                checks_since_failure=since[k],
                snoozed=snoozed[k],
            )
            for k in range(n)
        ]
        d = decide_outage(
            state, health, kind=kind, now=T0 + i * STEP, failure_threshold=threshold, recovery_checks=recovery
        )
        expected_action = {
            NO: OutageAction.NONE,
            SAME: OutageAction.NONE,
            OPEN: OutageAction.POST_NOTE,
            EDIT: OutageAction.EDIT_NOTE,
            OVER: OutageAction.POST_RECOVERY,
        }[d.reason]
        assert d.action is expected_action
        state = d.state.model_copy(update={"note_ts": "1.0"}) if d.reason is OPEN else d.state
        out.append((d.reason, d.state.listed))
    return out


def reasons(rows):
    return [r for r, _ in rows]


CASES = [
    (
        "a full outage: one note, then one recovery after three good checks in a row",
        [["f", "f"]] * 4 + [["ok", "ok"]] * 3,
        [NO, NO, OPEN, SAME, SAME, SAME, OVER],
        {},
    ),
    ("a short streak says nothing", [["f", "ok"], ["f", "ok"], ["ok", "ok"]], [NO, NO, NO], {}),
    (
        "a target failing later joins the note (an edit)",
        [["f", "ok"], ["f", "ok"], ["f", "ok"], ["f", "f"], ["f", "f"]],
        [NO, NO, OPEN, EDIT, SAME],
        {},
    ),
    (
        "a target proven again leaves the note (an edit); the last one ends the outage",
        [["f", "f"]] * 3 + [["ok", "f"]] * 3 + [["ok", "ok"]] * 3,
        [NO, NO, OPEN, SAME, SAME, EDIT, SAME, SAME, OVER],
        {},
    ),
    (
        "flapping answers never end it",
        [["f", "f"]] * 3 + [["ok", "f"], ["f", "ok"], ["ok", "ok"], ["f", "f"]] * 5,
        [NO, NO, OPEN] + [SAME] * 20,
        {},
    ),
    (
        "recovery_checks 1: one good check ends it",
        [["f"], ["f"], ["ok"]],
        [NO, OPEN, OVER],
        {"threshold": 2, "recovery": 1},
    ),
    ("a snoozed target opens nothing", [["z", "ok"]] * 5, [NO] * 5, {}),
    (
        "a listed target that is snoozed stays listed until proven (no false recovery)",
        [["f", "ok"]] * 3 + [["z", "ok"]] * 2 + [["ok", "ok"]] * 3,
        [NO, NO, OPEN, SAME, SAME, SAME, SAME, OVER],
        {},
    ),
    (
        "a second outage after the first ended gets its own note",
        [["f"]] * 3 + [["ok"]] * 3 + [["f"]] * 3,
        [NO, NO, OPEN, SAME, SAME, OVER, NO, NO, OPEN],
        {},
    ),
]


@pytest.mark.parametrize(("steps", "expected", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_outage_table(steps, expected, options):
    assert reasons(walk(steps, **options)) == expected


def test_the_note_lists_what_cannot_be_checked():
    rows = walk([["f", "ok", "f"]] * 3 + [["ok", "ok", "f"]])
    assert rows[2] == (OPEN, ("d0", "d2"))
    assert rows[3] == (SAME, ("d0", "d2"))  # d0 is not proven after one good check


def _health(deployment_id: str, **over) -> TargetHealth:
    return TargetHealth(deployment_id=deployment_id, failure_streak=3, checks_since_failure=0, **over)


def test_a_deployment_watch_with_an_open_alert_notes_in_its_thread():
    d = decide_outage(None, [_health("d0", episode_anchor_ts="111.1")], kind="deployment", now=T0)
    assert d.reason is OPEN and d.state.thread_ts == "111.1"


def test_a_namespace_watch_notes_at_the_top_level_even_with_alerts_open():
    d = decide_outage(None, [_health("d0", episode_anchor_ts="111.1")], kind="namespace", now=T0)
    assert d.reason is OPEN and d.state.thread_ts is None and d.state.since == T0


def test_the_settings_must_be_positive():
    with pytest.raises(ValueError):
        decide_outage(None, [], kind="namespace", now=T0, recovery_checks=0)
