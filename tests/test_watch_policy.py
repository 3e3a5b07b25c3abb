"""The watch policy, table-driven: sequences of checks -> what the bot posts, edits or keeps quiet.

Tokens: a risk level ("LOW", "MID", "HIGH" or any raw string, e.g. an unknown "RISK_LEVEL_SEVERE"),
"fail" (the API call failed), "nojob" (no running job), "none" (a diagnosis without a risk level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.diagnosis.risk import HIGH, LOW, MID, Risk
from bot.watch.policy import Action, Decision, Observation, Reason, TargetState, decide

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
SEVERE = "RISK_LEVEL_SEVERE"  # a level this code has never seen: ranked like HIGH

FIRST = (Reason.FIRST_ALERT, Action.POST_ALERT)
RISE = (Reason.FURTHER_RISE, Action.POST_FOLLOWUP)
NORMAL = (Reason.BACK_TO_NORMAL, Action.POST_FOLLOWUP)
UPDATE = (Reason.UPDATE_ONLY, Action.UPDATE_ANCHOR)
PENDING = (Reason.PENDING_CONFIRMATION, Action.NONE)
SAME = (Reason.UNCHANGED, Action.NONE)
BELOW = (Reason.BELOW_THRESHOLD, Action.NONE)
NOT_REPORTED = (Reason.NOT_REPORTED, Action.NONE)
COUNTED = (Reason.FAILURE_COUNTED, Action.NONE)
NOJOB = (Reason.NO_RUNNING_JOB, Action.POST_NOTE)
NOJOB_QUIET = (Reason.NO_RUNNING_JOB_QUIET, Action.NONE)
SNOOZED = (Reason.SNOOZED, Action.NONE)


def observe(token: str, at: datetime) -> Observation:
    if token == "fail":
        return Observation(kind="failure", error_kind="FlinkUnavailable", at=at)
    if token == "nojob":
        return Observation(kind="no_job", at=at)
    if token == "none":
        return Observation(kind="risk", risk=None, at=at)
    return Observation(kind="risk", risk=token, health_score=70, at=at)


def run(
    tokens: list[str],
    *,
    threshold: Risk = MID,
    snooze: tuple[int, int] | None = None,
) -> list[Decision]:
    """Feed checks STEP apart, persisting each decision's state as the scheduler would.

    `snooze=(i, n)`: just before check i the user snoozes the target so that checks i .. i+n-1
    fall inside the snooze and check i+n is the first one after it.
    """
    state: TargetState | None = None
    out: list[Decision] = []
    for i, token in enumerate(tokens):
        at = T0 + i * STEP
        if snooze is not None and i == snooze[0]:
            until = T0 + (snooze[0] + snooze[1]) * STEP - STEP / 2
            state = (state or TargetState()).model_copy(update={"snoozed_until": until})
        d = decide(state, observe(token, at), threshold=threshold, now=at)
        out.append(d)
        state = d.state
    return out


def pairs(decisions: list[Decision]) -> list[tuple[Reason, Action]]:
    return [(d.reason, d.action) for d in decisions]


CASES = [
    # (id, tokens, expected, options)
    (
        "issue example",
        ["LOW", "MID", "MID", "HIGH", "MID", "MID", "LOW", "LOW"],
        [PENDING, PENDING, FIRST, RISE, PENDING, UPDATE, PENDING, NORMAL],
        {},
    ),
    (
        "rise needs two confirmations",
        ["LOW", "LOW", "MID", "MID", "MID"],
        [PENDING, BELOW, PENDING, FIRST, SAME],
        {},
    ),
    (
        "jump straight to HIGH alerts at once",
        ["LOW", "LOW", "HIGH", "HIGH"],
        [PENDING, BELOW, FIRST, SAME],
        {},
    ),
    ("further rise MID to HIGH", ["MID", "MID", "HIGH", "HIGH"], [PENDING, FIRST, RISE, SAME], {}),
    (
        "fall within range updates the anchor only, return to an announced level too",
        ["HIGH", "MID", "MID", "MID", "HIGH", "HIGH"],
        [FIRST, PENDING, UPDATE, SAME, UPDATE, SAME],
        {},
    ),
    (
        "fall below threshold needs two confirmations, then a new episode can open",
        ["HIGH", "LOW", "LOW", "LOW", "MID", "MID"],
        [FIRST, PENDING, NORMAL, BELOW, PENDING, FIRST],
        {},
    ),
    (
        "flapping below and at threshold never alerts",
        ["LOW", "LOW", "MID", "LOW", "MID", "LOW", "MID", "LOW"],
        [PENDING, BELOW, PENDING, BELOW, PENDING, BELOW, PENDING, BELOW],
        {},
    ),
    (
        "flapping while alerting never clears",
        ["MID", "MID", "LOW", "MID", "LOW", "MID"],
        [PENDING, FIRST, PENDING, SAME, PENDING, SAME],
        {},
    ),
    (
        "flapping between HIGH and MID edits nothing",
        ["HIGH", "MID", "HIGH", "MID", "HIGH"],
        [FIRST, PENDING, SAME, PENDING, SAME],
        {},
    ),
    ("unknown level is treated like HIGH", ["LOW", "LOW", SEVERE], [PENDING, BELOW, FIRST], {}),
    (
        "unknown level alerts under threshold HIGH",
        ["MID", "MID", SEVERE],
        [PENDING, BELOW, FIRST],
        {"threshold": HIGH},
    ),
    (
        "HIGH after an announced unknown level is not a further rise",
        [SEVERE, "HIGH", "HIGH"],
        [FIRST, PENDING, UPDATE],
        {},
    ),
    (
        "threshold HIGH ignores MID",
        ["LOW", "LOW", "MID", "MID", "MID", "HIGH", "MID", "MID"],
        [PENDING, BELOW, PENDING, BELOW, BELOW, FIRST, PENDING, NORMAL],
        {"threshold": HIGH},
    ),
    ("threshold LOW alerts on LOW", ["LOW", "LOW"], [PENDING, FIRST], {"threshold": LOW}),
    ("first sight at MID needs a second MID", ["MID", "MID"], [PENDING, FIRST], {}),
    ("first sight at HIGH alerts at once", ["HIGH"], [FIRST], {}),
    ("first sight at LOW", ["LOW", "LOW"], [PENDING, BELOW], {}),
    ("first sight is a failure", ["fail", "MID", "MID"], [COUNTED, PENDING, FIRST], {}),
    (
        "aliases and raw spellings are one level",
        ["mid", "RISK_LEVEL_MID", "Medium"],
        [PENDING, FIRST, SAME],
        {},
    ),
    (
        "failures post nothing per deployment (the watch's outage note does, bot.watch.outage)",
        ["MID", "MID", "fail", "fail", "fail", "fail", "fail", "MID", "MID"],
        [PENDING, FIRST, COUNTED, COUNTED, COUNTED, COUNTED, COUNTED, SAME, SAME],
        {},
    ),
    (
        "a short failure streak posts nothing",
        ["LOW", "LOW", "fail", "fail", "LOW"],
        [PENDING, BELOW, COUNTED, COUNTED, BELOW],
        {},
    ),
    (
        "a success resets the streak",
        ["LOW", "fail", "fail", "LOW", "fail", "fail", "LOW"],
        [PENDING, COUNTED, COUNTED, BELOW, COUNTED, COUNTED, BELOW],
        {},
    ),
    (
        "failures do not disturb a pending rise",
        ["LOW", "LOW", "MID", "fail", "MID"],
        [PENDING, BELOW, PENDING, COUNTED, FIRST],
        {},
    ),
    (
        "failures do not disturb a pending fall",
        ["HIGH", "LOW", "fail", "fail", "LOW"],
        [FIRST, PENDING, COUNTED, COUNTED, NORMAL],
        {},
    ),
    (
        "a further rise after failures",
        ["MID", "MID", "fail", "fail", "fail", "HIGH", "HIGH"],
        [PENDING, FIRST, COUNTED, COUNTED, COUNTED, RISE, SAME],
        {},
    ),
    (
        "a fall within range after failures",
        ["HIGH", "MID", "fail", "fail", "fail", "MID", "MID"],
        [FIRST, PENDING, COUNTED, COUNTED, COUNTED, UPDATE, SAME],
        {},
    ),
    (
        "no running job and no episode: quiet",
        ["LOW", "LOW", "nojob", "nojob", "LOW"],
        [PENDING, BELOW, NOJOB_QUIET, NOJOB_QUIET, BELOW],
        {},
    ),
    (
        "no running job in an episode: one note per episode",
        ["MID", "MID", "nojob", "nojob", "MID", "nojob", "MID"],
        [PENDING, FIRST, NOJOB, NOJOB_QUIET, SAME, NOJOB_QUIET, SAME],
        {},
    ),
    (
        "no running job breaks a pending confirmation",
        ["LOW", "LOW", "MID", "nojob", "MID", "MID"],
        [PENDING, BELOW, PENDING, NOJOB_QUIET, PENDING, FIRST],
        {},
    ),
    (
        "job back at LOW after no running job closes the episode",
        ["MID", "MID", "nojob", "LOW", "LOW"],
        [PENDING, FIRST, NOJOB, PENDING, NORMAL],
        {},
    ),
    (
        "job back at HIGH after no running job",
        ["MID", "MID", "nojob", "HIGH"],
        [PENDING, FIRST, NOJOB, RISE],
        {},
    ),
    (
        "no running job is not an API failure",
        ["fail", "fail", "nojob", "fail", "fail"],
        [COUNTED, COUNTED, NOJOB_QUIET, COUNTED, COUNTED],
        {},
    ),
    (
        "no risk level reported: nothing learned",
        ["MID", "MID", "none", "none", "MID"],
        [PENDING, FIRST, NOT_REPORTED, NOT_REPORTED, SAME],
        {},
    ),
    (
        "no risk level keeps a pending level",
        ["LOW", "LOW", "MID", "none", "MID"],
        [PENDING, BELOW, PENDING, PENDING, FIRST],
        {},
    ),
    (
        "snooze: a rise is held back and alerts after the snooze",
        ["LOW", "LOW", "MID", "MID", "MID"],
        [PENDING, BELOW, PENDING, SNOOZED, FIRST],
        {"snooze": (0, 4)},
    ),
    (
        "snooze: back to normal is posted after the snooze, not during it",
        ["MID", "MID", "LOW", "LOW", "LOW"],
        [PENDING, FIRST, PENDING, SNOOZED, NORMAL],
        {"snooze": (2, 2)},
    ),
    (
        "snooze: a rise that fell back during the snooze is never posted",
        ["LOW", "LOW", "MID", "MID", "LOW", "LOW", "LOW"],
        [PENDING, BELOW, PENDING, SNOOZED, SNOOZED, BELOW, BELOW],
        {"snooze": (2, 4)},
    ),
    (
        "snooze: a further rise is posted after the snooze",
        ["MID", "MID", "HIGH", "HIGH", "HIGH"],
        [PENDING, FIRST, SNOOZED, SNOOZED, RISE],
        {"snooze": (2, 2)},
    ),
    (
        "snooze: a fall within range edits the anchor after the snooze",
        ["HIGH", "MID", "MID", "MID"],
        [FIRST, PENDING, SNOOZED, UPDATE],
        {"snooze": (1, 2)},
    ),
    (
        "snooze: the no-running-job note is held back, then posted",
        ["MID", "MID", "nojob", "nojob"],
        [PENDING, FIRST, SNOOZED, NOJOB],
        {"snooze": (2, 1)},
    ),
]


@pytest.mark.parametrize(("tokens", "expected", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sequence(tokens: list[str], expected: list[tuple[Reason, Action]], options: dict) -> None:
    assert pairs(run(tokens, **options)) == expected


def test_suppressed_reason_names_what_the_snooze_held_back() -> None:
    decisions = run(["MID", "MID", "LOW", "LOW", "LOW"], snooze=(2, 2))
    assert decisions[3].suppressed is Reason.BACK_TO_NORMAL
    assert decisions[3].state.announced_risk == MID.raw  # still open: the catch-up needs it
    assert decisions[4].state.announced_risk is None
    assert all(d.suppressed is None for d in decisions if d.reason is not Reason.SNOOZED)


def test_expired_snooze_is_cleared_and_an_active_one_kept() -> None:
    decisions = run(["LOW", "LOW", "LOW"], snooze=(0, 2))
    assert decisions[0].state.snoozed_until is not None
    assert decisions[1].state.snoozed_until is not None
    assert decisions[2].state.snoozed_until is None


def test_decision_shows_the_confirmed_level() -> None:
    decisions = run(["HIGH", "MID", "MID", "LOW", "LOW"])
    assert [d.risk for d in decisions] == [HIGH.raw, HIGH.raw, MID.raw, MID.raw, LOW.raw]
    assert [d.state.anchor_risk for d in decisions] == [HIGH.raw, HIGH.raw, MID.raw, MID.raw, None]
    assert [d.state.announced_risk for d in decisions] == [HIGH.raw, HIGH.raw, HIGH.raw, HIGH.raw, None]


def test_an_action_that_could_not_be_done_is_retried_at_the_next_check() -> None:
    rose = run(["MID", "MID"])[-1]
    assert rose.reason is Reason.FIRST_ALERT
    # Slack was down: the scheduler keeps the check but not the announcement.
    assert rose.state_if_not_done.confirmed_risk == MID.raw and not rose.state_if_not_done.episode_open
    retry = decide(rose.state_if_not_done, observe("LOW", T0 + 2 * STEP), now=T0 + 2 * STEP)
    assert (retry.reason, retry.action) == FIRST
    quiet = run(["LOW"])[-1]
    assert quiet.state_if_not_done == quiet.state


def test_listing_fields_follow_the_checks() -> None:
    decisions = run(["MID", "fail", "nojob"])
    ok, failed, nojob = (d.state for d in decisions)
    assert (ok.last_kind, ok.last_observed_risk, ok.last_health_score) == ("risk", MID.raw, 70)
    assert ok.last_checked_at == ok.last_success_at == T0
    assert (failed.last_kind, failed.last_error_kind, failed.failure_streak) == (
        "failure",
        "FlinkUnavailable",
        1,
    )
    assert failed.last_checked_at == T0 + STEP and failed.last_success_at == T0
    assert (nojob.last_kind, nojob.last_error_kind, nojob.failure_streak) == ("no_job", None, 0)
    assert nojob.last_observed_risk == MID.raw  # the last reported level is kept for the listing
    assert nojob.last_success_at == T0 + 2 * STEP


def test_decide_is_pure() -> None:
    state = run(["HIGH", "MID"])[-1].state
    obs = observe("MID", T0 + 2 * STEP)
    first = decide(state, obs, threshold=MID, now=T0 + 2 * STEP)
    again = decide(state, obs, threshold=MID, now=T0 + 2 * STEP)
    assert first == again
    assert state == run(["HIGH", "MID"])[-1].state  # the input is not changed
    # The clock is only consulted for the snooze: a far-away `now` changes nothing else.
    assert decide(state, obs, threshold=MID, now=T0 + timedelta(days=400)) == first


@pytest.mark.parametrize("threshold", [Risk(None), Risk("RISK_LEVEL_SEVERE")])
def test_threshold_must_be_a_known_level(threshold: Risk) -> None:
    with pytest.raises(ValueError):
        decide(None, observe("MID", T0), threshold=threshold, now=T0)


def test_checks_since_failure_counts_good_checks_after_a_failure() -> None:
    # what the watch's outage rule (bot.watch.outage) reads: None until a check fails
    counts = [d.state.checks_since_failure for d in run(["LOW", "fail", "LOW", "nojob", "fail", "LOW"])]
    assert counts == [None, 0, 1, 2, 0, 1]


# ---- property-style: every short sequence keeps the invariants on-call engineers rely on ----


@dataclass
class Path:
    """What the channel was told so far along one sequence, and the observations that led there."""

    state: TargetState | None = None
    episode_open: bool = False  # from the posts alone: POST_ALERT opens, BACK_TO_NORMAL closes
    risk_run: list[str] = field(default_factory=list)  # risk observations since the last no-job
    step: int = 0


def _check_step(path: Path, token: str, d: Decision, threshold: Risk) -> Path:
    before = path.state or TargetState()
    after = d.state
    observed = Risk.parse(token).raw if token not in ("fail", "nojob") else None
    rank = Risk(observed).rank

    # Posted alerts and resolutions pair up; the persisted episode agrees with what was posted.
    if d.reason is Reason.FIRST_ALERT:
        assert not path.episode_open, "two alerts without a back-to-normal between them"
    if d.reason in (Reason.BACK_TO_NORMAL, Reason.FURTHER_RISE, Reason.UPDATE_ONLY, Reason.NO_RUNNING_JOB):
        assert path.episode_open, f"{d.reason} without an alert before it"
    episode_open = (
        path.episode_open or d.reason is Reason.FIRST_ALERT
    ) and d.reason is not Reason.BACK_TO_NORMAL
    assert after.episode_open == episode_open

    # Whatever is confirmed at or above the threshold has been announced; nothing below is open.
    confirmed_rank = Risk(after.confirmed_risk).rank
    if confirmed_rank >= threshold.rank:
        assert after.announced_risk is not None and Risk(after.announced_risk).rank >= confirmed_rank
    else:
        assert not after.episode_open

    # Two consecutive sightings of a level at or above the threshold (failures between allowed),
    # or one sighting of HIGH, are always announced.
    risk_run = [] if token == "nojob" else [*path.risk_run, observed] if token != "fail" else path.risk_run
    if observed is not None and rank >= threshold.rank:
        if rank >= HIGH.rank or risk_run[-2:] == [observed, observed]:
            assert after.announced_risk is not None and Risk(after.announced_risk).rank >= rank

    # Alerts need a confirmation: a HIGH-rank sighting or the same level twice in a row.
    if d.action in (Action.POST_ALERT, Action.POST_FOLLOWUP) and d.reason is not Reason.BACK_TO_NORMAL:
        assert rank >= HIGH.rank or risk_run[-2:] == [observed, observed], "an alert on a single sighting"

    # Nothing new seen: no alert, follow-up, edit or note.
    if token != "fail" and observed == before.confirmed_risk and before.pending_risk is None:
        assert d.action is Action.NONE

    # A failure is not a risk change and posts nothing here (the watch's outage rule does).
    if token == "fail":
        for name in ("confirmed_risk", "pending_risk", "pending_count", "announced_risk", "anchor_risk"):
            assert getattr(after, name) == getattr(before, name), name
        assert d.action is Action.NONE and after.failure_streak == before.failure_streak + 1

    return Path(
        state=after,
        episode_open=episode_open,
        risk_run=risk_run,
        step=path.step + 1,
    )


def _walk(path: Path, depth: int, alphabet: tuple[str, ...], threshold: Risk) -> int:
    """Depth-first over every sequence, so each prefix is decided once. Returns sequences checked."""
    if depth == 0:
        return 1
    checked = 1
    at = T0 + path.step * STEP
    for token in alphabet:
        d = decide(path.state, observe(token, at), threshold=threshold, now=at)
        nxt = _check_step(path, token, d, threshold)
        checked += _walk(nxt, depth - 1, alphabet, threshold)
    return checked


@pytest.mark.parametrize(
    ("alphabet", "depth", "threshold"),
    [
        (("LOW", "MID", "HIGH", "fail"), 6, MID),
        (("LOW", "MID", "HIGH", "fail"), 6, HIGH),
        (("LOW", "MID", "HIGH", "fail", "nojob", SEVERE), 5, MID),
    ],
    ids=["4-tokens-mid", "4-tokens-high", "6-tokens-mid"],
)
def test_invariants_hold_for_all_short_sequences(
    alphabet: tuple[str, ...], depth: int, threshold: Risk
) -> None:
    checked = _walk(Path(), depth, alphabet, threshold)
    assert checked == sum(len(alphabet) ** k for k in range(depth + 1))


def test_flapping_sequences_never_alert() -> None:
    """Every alternation of LOW and MID (failures mixed in) stays quiet, whatever it starts with."""
    for start in ("LOW", "MID"):
        other = "MID" if start == "LOW" else "LOW"
        for fail_every in (0, 2, 3):
            tokens: list[str] = []
            for i in range(12):
                tokens.append(start if i % 2 == 0 else other)
                if fail_every and i % fail_every == 0:
                    tokens.append("fail")
            assert not any(d.posts for d in run(tokens)), tokens
