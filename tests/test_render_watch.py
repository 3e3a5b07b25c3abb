"""Alerts, follow-ups, the watches listing and the fleet report are valid, bounded and safe Block Kit.

Every message goes through `problems()` (slack_sdk's own model checks plus the limits slack_sdk
does not check) and through a scan for markup nobody put there on purpose. Domain objects are built
directly, as the watch engine builds them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from render_helpers import strings, text_chars

from bot.config import parse_duration
from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.risk import Risk
from bot.flink.models import JobDiagnosis
from bot.slack.blocks import Message, problems, slack_len
from bot.slack.render import (
    Renderer,
    blocks_to_text,
    interval_text,
    message_to_text,
    parse_action_value,
    parse_target_value,
    render_alert,
    render_alert_followup,
    render_report,
    render_watches,
    target_value,
    threshold_text,
)
from bot.watch.lifecycle import Action, Change, ChangeKind, Condition, Reason
from bot.watch.model import Notice, Watch, WatchTarget
from bot.watch.policy import TargetState
from bot.watch.report import FleetReport, ReportRow

NOW = datetime(2025, 2, 24, 9, 0, tzinfo=UTC)
HIGH, MID, LOW = "RISK_LEVEL_HIGH", "RISK_LEVEL_MID", "RISK_LEVEL_LOW"
EVIL = "<!channel> <@U1> <http://x|y> & <#C1> `tick` *star*"
EVIL_SHOWN = ("&lt;!channel&gt;", "&lt;@U1&gt;", "&lt;http://x|y&gt;", "&amp;")
OWN_DATE = re.compile(r"^<!date\^-?\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>$")
TOKEN = re.compile(r"<[^<>]*>")
# Slack refuses messages whose block texts add up past ~12-13k characters (msg_blocks_too_long);
# every message stays under blocks.MAX_TOTAL_TEXT, counted again here independently.
TOTAL_TEXT_MAX = 9000


# --- checks ----------------------------------------------------------------------------------


def check(message: Message) -> dict[str, Any]:
    """Valid for Slack, within the limits, unique block ids, and no markup but our own dates."""
    assert isinstance(message, Message)
    assert problems(message) == []
    kwargs = message.to_slack()
    assert json.loads(json.dumps(kwargs)) == kwargs
    for blocks in [kwargs["blocks"], *[a["blocks"] for a in kwargs.get("attachments") or []]]:
        ids = [b["block_id"] for b in blocks if "block_id" in b]
        assert len(ids) == len(set(ids))
    assert (
        text_chars([kwargs["blocks"], *[a["blocks"] for a in kwargs.get("attachments") or []]])
        <= TOTAL_TEXT_MAX
    )
    for s in strings(kwargs):
        for token in TOKEN.findall(s):
            assert OWN_DATE.match(token), f"unexpected markup {token!r} in {s[:200]!r}"
        for bad in ("<!channel", "<!here", "<@U", "<#C", "<http"):
            assert bad not in s
    return kwargs


def _all_text(message: Message) -> str:
    return "\n".join(strings(message.to_slack()))


def _block(message: Message, block_id: str) -> dict[str, Any]:
    return next(b for b in message.blocks if b.get("block_id") == block_id)


def _buttons(message: Message) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in blocks_to_text(message)[1]}


def _date(when: datetime) -> str:
    return f"<!date^{int(when.timestamp())}^"


# --- domain objects --------------------------------------------------------------------------


def _symptom(i: int, extra: str = "") -> dict[str, str]:
    return {
        "name": f"Symptom {i}{extra}",
        "description": f"description {i}",
        "recommendation": f"Increase the memory of {i}{extra}",
    }


def run_of(risk: str | None = HIGH, symptoms: int = 5, extra: str = "", **target_over: Any) -> DiagnosisRun:
    target = {
        "workspace": "ws-1",
        "namespace": "team-a",
        "deployment_id": "dep-0001",
        "job_id": "job-now",
        "deployment_name": "orders-etl",
    } | target_over
    payload = {
        "riskLevel": risk,
        "healthScore": 40,
        "symptoms": {"runtime": [_symptom(i, extra) for i in range(symptoms)]},
    }
    return DiagnosisRun(
        target=Target(**target), diagnosis=JobDiagnosis.model_validate(payload), diagnosed_at=NOW
    )


def state(**over: Any) -> TargetState:
    base: dict[str, Any] = {
        "confirmed_risk": HIGH,
        "announced_risk": HIGH,
        "anchor_risk": HIGH,
        "last_kind": "risk",
        "last_observed_risk": HIGH,
        "last_health_score": 40,
        "last_checked_at": NOW,
        "last_success_at": NOW,
    }
    return TargetState(**(base | over))


def wtarget(**over: Any) -> WatchTarget:
    base: dict[str, Any] = {
        "id": 42,
        "watch_id": 1,
        "team_id": "T1",
        "channel_id": "C1",
        "workspace": "ws-1",
        "namespace": "team-a",
        "deployment_id": "dep-0001",
        "deployment_name": "orders-etl",
        "min_risk": MID,
        "interval_seconds": 300,
        "state": state(),
        "job_id": "job-stored",
    }
    return WatchTarget(**(base | over))


def notice(
    reason: Reason = Reason.NEW_INCIDENT,
    *,
    action: Action = Action.POST_ROOT,
    changes: tuple[Change, ...] = (),
    risk: str | None = HIGH,
    run: DiagnosisRun | None = None,
    error: str | None = None,
    previous_risk: str | None = None,
    **target_over: Any,
) -> Notice:
    return Notice(
        action=action,
        reason=reason,
        target=wtarget(**target_over),
        decision_risk=risk,
        run=run,
        error=error,
        changes=changes,
        previous_risk=previous_risk,
    )


ROSE = (Change(kind=ChangeKind.RISK_ROSE, condition=Condition.RISK, level=HIGH),)
NO_JOB = (Change(kind=ChangeKind.NO_RUNNING_JOB),)


# --- the alert (anchor) ----------------------------------------------------------------------


def test_first_alert_shows_level_place_health_threshold_and_what_to_do():
    run = run_of()
    m = render_alert(notice(run=run), now=NOW)
    check(m)
    assert m.blocks[0]["type"] == "header"
    assert m.blocks[0]["text"]["text"] == ":red_circle: High risk: orders-etl"
    facts = "\n".join(f["text"] for f in _block(m, "facts")["fields"])
    assert "`team-a`" in facts and "`ws-1`" in facts
    assert "`job-now`" in facts and "job-stored" not in facts  # the job the check just diagnosed
    assert "40/100 (unhealthy)" in facts
    assert "alerts at Mid and above, failed jobs, restarts ≥3, every 5m" in facts
    assert _date(NOW) in facts
    shown = [b for b in m.blocks if str(b.get("block_id", "")).startswith("sym.")]
    assert len(shown) == 3
    assert shown[0]["text"]["text"] == "*Symptom 0*\n:bulb: *What to do:* Increase the memory of 0"
    assert "…and 2 more symptoms" in _block(m, "more")["elements"][0]["text"]
    assert m.attachments and m.attachments[0]["color"] == Risk(HIGH).colour
    assert not any(b.get("block_id") == "snoozed" for b in m.blocks)
    # The notification text names the deployment and the event.
    assert m.text.startswith("High risk: orders-etl (namespace team-a)")
    assert "5 symptoms" in m.text and "Symptom 0" in m.text


def test_alert_buttons_carry_values_that_parse_back():
    run = run_of()
    b = _buttons(render_alert(notice(run=run), now=NOW))
    assert list(b) == ["rerun_alert", "snooze_1h", "snooze_24h", "snooze_redeploy", "unwatch_target"]
    rerun = parse_action_value(b["rerun_alert"]["value"])
    assert rerun.target == run.target and rerun.run is None and rerun.share is False
    for action_id in ("snooze_1h", "snooze_24h", "snooze_redeploy", "unwatch_target"):
        assert parse_target_value(b[action_id]["value"]) == 42
    assert b["snooze_1h"]["value"] == '{"t":42}'


def test_unwatch_asks_first():
    m = render_alert(notice(run=run_of(), deployment_name="x" * 400), now=NOW)
    check(m)
    actions = _block(m, "actions")["elements"]
    unwatch = next(e for e in actions if e["action_id"] == "unwatch_target")
    assert unwatch["style"] == "danger"
    confirm = unwatch["confirm"]
    assert confirm["title"]["text"] == "Stop watching?"
    assert confirm["text"]["text"].startswith("Stop watching *xxx")
    assert confirm["text"]["text"].endswith("* in this channel?")
    assert len(confirm["text"]["text"]) <= 300  # slack_sdk's limit for a dialog's text


def test_rerun_uses_the_stored_job_without_a_run_and_is_left_out_without_any_job():
    m = render_alert(notice(run=None), now=NOW)
    check(m)
    value = parse_action_value(_buttons(m)["rerun_alert"]["value"])
    assert value.target.job_id == "job-stored" and value.target.deployment_id == "dep-0001"
    assert "`job-stored`" in _all_text(m)
    bare = render_alert(notice(run=None, job_id=None), now=NOW)
    check(bare)
    assert "rerun_alert" not in _buttons(bare)
    assert "unwatch_target" in _buttons(bare)
    assert "no job known" in _all_text(bare)


def test_alert_without_a_run_shows_the_stored_top_symptom():
    m = render_alert(notice(run=None, top_symptom="Backpressure <!here>"), now=NOW)
    check(m)
    assert _block(m, "sym.0")["text"]["text"] == "*Top symptom:* Backpressure &lt;!here&gt;"


@pytest.mark.parametrize(
    ("risk", "header", "colour"),
    [
        ("RISK_LEVEL_CRITICAL", ":grey_question: RISK_LEVEL_CRITICAL risk: orders-etl", "#8e44ad"),
        (None, ":white_circle: Risk not reported: orders-etl", "#9e9e9e"),
        (MID, ":large_orange_circle: Mid risk: orders-etl", "#ecb22e"),
    ],
)
def test_alert_for_other_levels(risk, header, colour):
    m = render_alert(notice(risk=risk, run=run_of(risk)), now=NOW)
    check(m)
    assert m.blocks[0]["text"]["text"] == header
    assert m.attachments[0]["color"] == colour


def test_latest_sighting_that_differs_from_the_confirmed_level_is_marked():
    m = render_alert(notice(risk=HIGH, run=run_of(MID)), now=NOW)
    facts = "\n".join(f["text"] for f in _block(m, "facts")["fields"])
    assert "*Latest check*\n:large_orange_circle: Mid (not confirmed yet)" in facts
    same = render_alert(notice(risk=HIGH, run=run_of(HIGH)), now=NOW)
    assert "Latest check" not in _all_text(same)


def test_resolved_anchor_says_back_to_normal_and_offers_no_snooze():
    closed = state(confirmed_risk=LOW, announced_risk=None, anchor_risk=None, last_observed_risk=LOW)
    n = notice(Reason.BACK_TO_NORMAL, action=Action.POST_FOLLOWUP, risk=LOW, run=run_of(LOW), state=closed)
    m = render_alert(n, now=NOW)
    check(m)
    assert m.blocks[0]["text"]["text"] == ":white_check_mark: Back to normal: orders-etl"
    assert "Back to normal" in _block(m, "status")["text"]["text"]
    assert not any(str(b.get("block_id", "")).startswith("sym.") for b in m.blocks)
    assert set(_buttons(m)) == {"rerun_alert", "unwatch_target"}
    assert m.attachments[0]["color"] == Risk(LOW).colour
    assert m.text.startswith("Back to normal: orders-etl (namespace team-a): health 40/100 (unhealthy)")


def test_an_open_episode_is_not_shown_as_resolved():
    # BACK_TO_NORMAL with the episode still open cannot come from the policy; the level decides.
    m = render_alert(notice(Reason.BACK_TO_NORMAL, risk=HIGH, run=run_of()), now=NOW)
    assert m.blocks[0]["text"]["text"].startswith(":red_circle: High risk")


def test_snoozed_alert_says_until_when():
    until = NOW + timedelta(hours=1)
    m = render_alert(notice(run=run_of(), state=state(snoozed_until=until)), now=NOW)
    check(m)
    assert _block(m, "snoozed")["elements"][0]["text"].startswith(f":zzz: Snoozed until {_date(until)}")
    # A snooze that has ended is not shown, and a naive stored time counts as UTC.
    ended = render_alert(notice(run=run_of(), state=state(snoozed_until=NOW - timedelta(minutes=1))), now=NOW)
    assert not any(b.get("block_id") == "snoozed" for b in ended.blocks)
    naive = render_alert(
        notice(run=run_of(), state=state(snoozed_until=(NOW + timedelta(hours=2)).replace(tzinfo=None))),
        now=NOW,
    )
    assert _date(NOW + timedelta(hours=2)) in _block(naive, "snoozed")["elements"][0]["text"]


# --- follow-ups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "changes", "risk", "over", "sentence", "text"),
    [
        (
            Reason.CHANGED,
            ROSE,
            HIGH,
            {"previous_risk": MID},
            ":red_circle: Risk rose further on *orders-etl*: Mid → *High* (health 40/100 (unhealthy)).",
            "orders-etl: risk rose further: Mid → High (health 40/100 (unhealthy))",
        ),
        (
            Reason.BACK_TO_NORMAL,
            (Change(kind=ChangeKind.RISK_CLEARED, condition=Condition.RISK),),
            LOW,
            {"state": state(announced_risk=None, confirmed_risk=LOW)},
            ":white_check_mark: Risk on *orders-etl* is Low again.\n"
            ":white_check_mark: *Back to normal* on *orders-etl*: this incident is over.",
            "orders-etl: risk Low again; back to normal",
        ),
        (
            Reason.CHANGED,
            NO_JOB,
            HIGH,
            {"state": state(last_kind="no_job")},
            ":black_circle: *orders-etl* has no running job any more; its risk is unknown until a job runs.",
            "orders-etl: no running job any more",
        ),
        (
            Reason.CHANGED,
            (Change(kind=ChangeKind.JOB_FAILED, condition=Condition.FAILED),),
            HIGH,
            {},
            ":red_circle: *Job failed* on *orders-etl*.",
            "orders-etl: the job failed",
        ),
        (
            Reason.CHANGED,
            (Change(kind=ChangeKind.RESTARTING, condition=Condition.RESTARTING, restarts=7, starts=1),),
            HIGH,
            {},
            ":arrows_counterclockwise: *orders-etl* is *restarting*: 7 restarts since the last check.",
            "orders-etl: restarting: 7 restarts since the last check",
        ),
        (
            Reason.CHANGED,
            (Change(kind=ChangeKind.SNOOZE_ENDED),),
            HIGH,
            {},
            ":alarm_clock: The snooze on *orders-etl* ended: the deployment started a new job.",
            "orders-etl: snooze ended: a new job started",
        ),
    ],
)
def test_followup_says_what_happened(reason, changes, risk, over, sentence, text):
    n = notice(
        reason,
        action=Action.POST_FOLLOWUP,
        changes=changes,
        risk=risk,
        run=run_of(risk) if changes is not NO_JOB else None,
        last_health_score=None,
        **over,
    )
    m = render_alert_followup(n, now=NOW)
    check(m)
    assert _block(m, "followup")["text"]["text"] == sentence
    assert m.text == text
    where = _block(m, "where")["elements"][0]["text"]
    assert "namespace `team-a`" in where and "workspace `ws-1`" in where


def test_further_rise_shows_the_top_symptom_and_what_to_do():
    m = render_alert_followup(notice(Reason.CHANGED, changes=ROSE, run=run_of()), now=NOW)
    assert _block(m, "detail")["text"]["text"] == "*Symptom 0*\n:bulb: *What to do:* Increase the memory of 0"


def test_further_rise_names_the_earlier_level_only_when_it_is_known():
    m = render_alert_followup(notice(Reason.CHANGED, changes=ROSE, run=run_of(), min_risk=LOW), now=NOW)
    assert m.text == "orders-etl: risk rose further: High (health 40/100 (unhealthy))"
    told = render_alert_followup(
        notice(Reason.CHANGED, changes=ROSE, run=run_of(), min_risk=LOW, previous_risk=LOW), now=NOW
    )
    assert told.text == "orders-etl: risk rose further: Low → High (health 40/100 (unhealthy))"


# --- hostile and non-ASCII text ----------------------------------------------------------------


def _hostile_notices() -> list[Notice]:
    run = run_of(extra=EVIL, deployment_name=EVIL, namespace=EVIL, job_id=EVIL)
    over = {"deployment_name": EVIL, "namespace": EVIL, "workspace": EVIL, "top_symptom": EVIL}
    return [
        notice(r, changes=c, run=run, risk=f"<!channel> {HIGH}", error=EVIL, **over)
        for r, c in ((Reason.NEW_INCIDENT, ()), (Reason.CHANGED, ROSE), (Reason.CHANGED, NO_JOB))
    ]


@pytest.mark.parametrize("n", _hostile_notices(), ids=lambda n: n.reason.value)
def test_hostile_text_in_alerts_is_escaped(n):
    for m in (render_alert(n, now=NOW), render_alert_followup(n, now=NOW)):
        check(m)
        text = _all_text(m)
        for shown in EVIL_SHOWN:
            assert shown in text
        assert "<!channel" not in m.text and "&lt;!channel&gt;" in m.text


def test_hostile_text_in_watches_and_report_is_escaped():
    t = wtarget(deployment_name=EVIL, state=state(last_observed_risk=f"<@U1> {HIGH}"))
    w = watch(1, "namespace", workspace=EVIL, namespace=EVIL, paused_reason=EVIL, interval_seconds=60)
    watches = render_watches([w], {1: [t]}, now=NOW)
    check(watches)
    rows = [ReportRow(deployment_id=EVIL, deployment_name=EVIL, namespace=EVIL, risk=EVIL, top_symptom=EVIL)]
    report = render_report(FleetReport(channel_id="C1", generated_at=NOW, rows=rows), title=EVIL)
    check(report)
    for m in (watches, report):
        text = _all_text(m)
        for shown in EVIL_SHOWN:
            assert shown in text


def test_non_ascii_names_survive():
    name = "订单-ETL 🚀 مرحبا"
    n = notice(run=run_of(deployment_name=name), deployment_name=name)
    m = render_alert(n, now=NOW)
    check(m)
    assert name in m.blocks[0]["text"]["text"] and name in m.text
    f = render_alert_followup(n.model_copy(update={"reason": Reason.CHANGED, "changes": NO_JOB}), now=NOW)
    check(f)
    assert name in f.text
    long_name = "名" * 400 + "👩\u200d💻"
    m = render_alert(notice(run=run_of(), deployment_name=long_name), now=NOW)
    check(m)
    _all_text(m).encode("utf-8")  # no lone surrogates from a cut


# --- the watches listing -----------------------------------------------------------------------


def watch(id: int = 1, kind: str = "deployment", **over: Any) -> Watch:
    base: dict[str, Any] = {
        "id": id,
        "team_id": "T1",
        "channel_id": "C1",
        "kind": kind,
        "workspace": "ws-1",
        "namespace": "team-a",
        "deployment_id": "dep-0001" if kind == "deployment" else None,
        "deployment_name": "orders-etl" if kind == "deployment" else None,
        "min_risk": MID,
        "interval_seconds": 300,
    }
    return Watch(**(base | over))


def test_no_watches_says_how_to_start():
    m = render_watches([], {}, now=NOW)
    check(m)
    expected = "This channel watches nothing yet. Try `/flinkdiag watch deployment &lt;name&gt;`."
    assert m.text == expected
    assert [b["text"]["text"] for b in m.blocks] == [expected]


def test_watches_show_threshold_interval_and_each_deployments_state():
    snoozed = NOW + timedelta(hours=3)
    targets = [
        wtarget(
            id=1,
            watch_id=2,
            deployment_name="low-one",
            state=state(last_observed_risk=LOW, last_health_score=95),
        ),
        wtarget(id=2, watch_id=2, deployment_name="high-one", state=state(snoozed_until=snoozed)),
        wtarget(id=3, watch_id=2, deployment_name="no-job", state=state(last_kind="no_job")),
        wtarget(
            id=4, watch_id=2, deployment_name="failing", state=state(last_kind="failure", failure_streak=2)
        ),
        wtarget(id=5, watch_id=2, deployment_name="fresh", state=TargetState()),
        wtarget(id=6, watch_id=2, deployment_name="quiet", muted=True, state=state(last_observed_risk=MID)),
        wtarget(id=7, watch_id=2, deployment_name="mid-one", state=state(last_observed_risk=MID)),
    ]
    watches = [
        watch(1),
        watch(2, "namespace", min_risk=HIGH, interval_seconds=3600, paused_reason="not_in_channel"),
    ]
    m = render_watches(watches, {1: [wtarget(id=9)], 2: targets}, now=NOW)
    check(m)
    first = _block(m, "watch.0")["text"]["text"].split("\n")
    assert first[0].startswith(":eyes: *Deployment* *orders-etl* · namespace `team-a`")
    assert first[0].endswith("alerts at Mid and above, failed jobs, restarts ≥3 · every 5m")
    assert first[1].startswith(
        ":red_circle: *orders-etl* — High · health 40/100 (unhealthy) · checked <!date^"
    )
    lines = _block(m, "watch.1")["text"]["text"].split("\n")
    assert lines[0].endswith(
        "· 7 deployments · alerts at High and above, failed jobs, restarts ≥3 · every 1h"
    )
    assert lines[1] == (
        ":double_vertical_bar: paused: `not_in_channel` — invite me (`/invite @flinkdiag`) and run "
        "`/flinkdiag watches` to resume"
    )
    names = [re.search(r"\*([^*]+)\*", x).group(1) for x in lines[2:]]  # type: ignore[union-attr]
    assert names == ["high-one", "mid-one", "low-one", "failing", "no-job", "fresh", "quiet"]
    by_name = dict(zip(names, lines[2:], strict=True))
    assert f":zzz: snoozed until {_date(snoozed)}" in by_name["high-one"]
    assert "cannot check (2 failures) · last seen High" in by_name["failing"]
    assert by_name["no-job"].startswith(":black_circle: *no-job* — no running job · checked")
    assert by_name["fresh"] == ":hourglass: *fresh* — not checked yet"
    assert by_name["quiet"].endswith(":no_bell: muted")
    summary = _block(m, "summary")["elements"][0]["text"]
    assert summary.startswith("*2 watches* · 8 deployments: 2 high, 2 mid, 1 low, 1 cannot check")
    assert ":double_vertical_bar: 1 paused" in summary
    assert m.text.startswith("This channel has 2 watches, 8 deployments (2 high")


def _namespace_targets(n: int) -> list[WatchTarget]:
    out = []
    for i in range(n):
        if i % 50 == 0:
            s = state(last_kind="no_job")
        elif i % 7 == 0:
            s = state(last_observed_risk=HIGH, last_health_score=i % 60)
        elif i % 3 == 0:
            s = state(last_observed_risk=MID, last_health_score=70)
        else:
            s = state(last_observed_risk=LOW, last_health_score=90)
        out.append(wtarget(id=i, watch_id=1, deployment_id=f"d-{i}", deployment_name=f"dep-{i:03d}", state=s))
    return out


def _key(t: WatchTarget) -> str:
    if t.state.last_kind == "no_job":
        return "no running job"
    return Risk(t.state.last_observed_risk).label.lower()


def test_a_namespace_of_500_is_summarised_worst_first_with_correct_counts():
    targets = _namespace_targets(500)
    m = render_watches([watch(1, "namespace")], {1: targets}, now=NOW)
    check(m)
    assert len(m.blocks) <= 50
    # The listing fills most of the total and stops itself; the generic "…and N more blocks" never shows.
    assert TOTAL_TEXT_MAX - 1200 < text_chars(m.blocks) <= TOTAL_TEXT_MAX
    assert "overflow" not in [b.get("block_id") for b in m.blocks]
    text = "\n".join(b["text"]["text"] for b in m.blocks if str(b.get("block_id", "")).startswith("watch."))
    lines = text.split("\n")[1:]
    more = lines.pop()
    shown = {re.search(r"\*(dep-\d+)\*", x).group(1) for x in lines}  # type: ignore[union-attr]
    assert 10 <= len(shown) < 500
    ranks = [
        Risk(HIGH).rank if x.startswith(":red") else 2 if x.startswith(":large_orange") else 1 for x in lines
    ]
    assert ranks == sorted(ranks, reverse=True)
    rest = [t for t in targets if t.deployment_name not in shown]
    counts: dict[str, int] = {}
    for t in rest:
        counts[_key(t)] = counts.get(_key(t), 0) + 1
    match = re.fullmatch(r"…and (\d+) more deployments: (.*)", more)
    assert match, more
    assert int(match.group(1)) == len(rest) == 500 - len(shown)
    listed = dict((k, int(n)) for n, k in (part.split(" ", 1) for part in match.group(2).split(", ")))
    assert listed == counts


def test_many_watches_are_counted_when_they_do_not_fit():
    watches = [watch(i, deployment_name=f"dep-{i}", deployment_id=f"d-{i}") for i in range(120)]
    targets = {i: [wtarget(id=i, watch_id=i, deployment_name=f"dep-{i}")] for i in range(120)}
    m = render_watches(watches, targets, now=NOW)
    check(m)
    assert len(m.blocks) <= 50
    assert "overflow" not in [b.get("block_id") for b in m.blocks]
    shown = sum(1 for b in m.blocks if re.fullmatch(r"watch\.\d+", str(b.get("block_id", ""))))
    assert 0 < shown < 120
    more = _block(m, "more")["elements"][0]["text"]
    assert more == f"…and {120 - shown} more watches ({120 - shown} deployments)"


def test_an_empty_namespace_watch_says_so():
    m = render_watches([watch(1, "namespace")], {}, now=NOW)
    check(m)
    assert "_no deployments found yet_" in _block(m, "watch.0")["text"]["text"]


# --- the fleet report --------------------------------------------------------------------------


def report_of(rows: list[ReportRow]) -> FleetReport:
    return FleetReport(channel_id="C1", generated_at=NOW, rows=rows)


def test_empty_report():
    m = render_report(report_of([]))
    check(m)
    assert m.blocks[0]["text"]["text"] == ":bar_chart: Fleet report"
    assert _block(m, "empty")["text"]["text"] == "No watched deployments in this channel."
    assert m.text == "Fleet report: No watched deployments in this channel."


def test_report_rows_show_health_change_and_status():
    rows = [
        ReportRow(
            deployment_id="d1",
            deployment_name="orders-etl",
            namespace="team-a",
            risk=HIGH,
            health_score=40,
            top_symptom="Checkpoint timeouts",
            previous_risk=MID,
            previous_health=70,
            in_last_report=True,
        ),
        ReportRow(deployment_id="d2", namespace="team-a", risk=MID, health_score=75, new_since_last=True),
        ReportRow(
            deployment_id="d3",
            deployment_name="billing",
            namespace="team-b",
            risk=LOW,
            health_score=95,
            previous_risk=MID,
            previous_health=95,
            in_last_report=True,
        ),
        ReportRow(
            deployment_id="d4",
            deployment_name="steady",
            namespace="team-b",
            risk=LOW,
            health_score=92,
            previous_risk=LOW,
            previous_health=90,
            in_last_report=True,
        ),
        ReportRow(deployment_id="d5", deployment_name="stopped", namespace="team-c", status="no_job"),
        ReportRow(deployment_id="d6", deployment_name="flaky", namespace="team-c", status="cannot_check"),
    ]
    m = render_report(report_of(rows), title="Daily report")
    check(m)
    assert m.blocks[0]["text"]["text"] == ":bar_chart: Daily report"
    summary = _block(m, "summary")["text"]["text"]
    assert summary.startswith("*1 high, 1 mid, 2 low, 1 cannot check, 1 no job* · 6 deployments · ")
    lines = _block(m, "rows.0")["text"]["text"].split("\n")
    assert lines == [
        ":red_circle: *orders-etl* · `team-a` · High · health 40/100 (unhealthy) (-30) · ↑ from Mid · "
        "Checkpoint timeouts",
        ":large_orange_circle: *d2* · `team-a` · Mid · health 75/100 (degraded) · :new: new",
        ":large_green_circle: *billing* · `team-b` · Low · health 95/100 (healthy) · ↓ from Mid",
        ":large_green_circle: *steady* · `team-b` · Low · health 92/100 (healthy) (+2)",
        ":black_circle: *stopped* · `team-c` · no running job",
        ":warning: *flaky* · `team-c` · cannot check",
    ]
    changes = _block(m, "changes")["elements"][0]["text"]
    assert (
        changes == "Since the last report: :arrow_up: 1 up · :arrow_down: 1 down · :new: 1 new · 1 unchanged"
    )
    assert m.text == (
        "Daily report: 1 high, 1 mid, 2 low, 1 cannot check, 1 no job (6 deployments); "
        "worst: orders-etl (High)"
    )
    assert not any(b.get("block_id") == "more" for b in m.blocks)


def _fleet(n: int, *, highs: int = 2, mids: int = 5) -> list[ReportRow]:
    rows = []
    for i in range(n):
        risk = HIGH if i < highs else MID if i < highs + mids else LOW
        rows.append(
            ReportRow(
                deployment_id=f"d{i}",
                deployment_name=f"deployment-{i:04d}",
                namespace="team-a",
                risk=risk,
                health_score=50 if risk != LOW else 90,
                top_symptom=f"Backpressure on operator {i} " + "x" * 100,
                previous_risk=risk,
                previous_health=90,
                in_last_report=True,
            )
        )
    return rows


def test_a_fleet_of_2000_is_summarised_within_slacks_limits():
    rows = _fleet(2000)
    m = render_report(report_of(rows))
    check(m)
    assert len(m.blocks) <= 50
    assert TOTAL_TEXT_MAX - 1200 < text_chars(m.blocks) <= TOTAL_TEXT_MAX
    assert "overflow" not in [b.get("block_id") for b in m.blocks]
    row_lines = [
        x
        for b in m.blocks
        if str(b.get("block_id", "")).startswith("rows.")
        for x in b["text"]["text"].split("\n")
    ]
    assert all(slack_len(b["text"]["text"]) <= 3000 for b in m.blocks if b.get("type") == "section")
    assert 20 <= len(row_lines) < 2000
    # Worst first: both highs and all mids are shown before any low.
    assert row_lines[0].startswith(":red_circle: *deployment-0000*")
    assert all(x.startswith(":large_orange_circle:") for x in row_lines[2:7])
    more = _block(m, "more")["elements"][0]["text"]
    assert more == f"…and {2000 - len(row_lines)} more deployments (all low)"
    assert m.text.startswith("Fleet report: 2 high, 5 mid, 1993 low (2000 deployments)")


def test_what_was_cut_is_counted_by_level():
    rows = _fleet(2000, highs=30, mids=300)
    m = render_report(report_of(rows))
    check(m)
    shown = sum(
        1
        for b in m.blocks
        if str(b.get("block_id", "")).startswith("rows.")
        for _ in b["text"]["text"].split("\n")
    )
    assert shown < 300
    rest = rows[shown:]
    highs = sum(1 for r in rest if r.risk == HIGH)
    mids = sum(1 for r in rest if r.risk == MID)
    lows = len(rest) - highs - mids
    expected = ", ".join(f"{k} {name}" for k, name in ((highs, "high"), (mids, "mid"), (lows, "low")) if k)
    assert _block(m, "more")["elements"][0]["text"] == f"…and {len(rest)} more deployments: {expected}"


# --- small pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "every 5m"),
        (60, "every 1m"),
        (90, "every 90s"),
        (3600, "every 1h"),
        (5400, "every 90m"),
        (86400, "every 1d"),
        (45, "every 45s"),
    ],
)
def test_interval_text(seconds, text):
    assert interval_text(seconds) == text
    # The listing's spelling is one `--every` accepts.
    assert parse_duration(text.removeprefix("every ")) == timedelta(seconds=seconds)


def test_threshold_text():
    assert threshold_text(MID) == "alerts at Mid and above"
    assert threshold_text("high") == "alerts at High and above"


def test_target_values_round_trip_and_refuse_otherstrings():
    assert parse_target_value(target_value(7)) == 7
    for bad in ("", "{}", '{"t": "7"}', '{"t": true}', "[7]", "not json", '{"ws": "x"}'):
        with pytest.raises(ValueError):
            parse_target_value(bad)


def test_console_view_of_an_alert_lists_its_buttons():
    text, buttons = blocks_to_text(render_alert(notice(run=run_of()), now=NOW))
    assert "== :red_circle: High risk: orders-etl ==" in text
    assert "[1] :repeat: Re-run diagnosis" in text and "[5] Unwatch" in text
    assert "Increase the memory of 0" in message_to_text(render_alert(notice(run=run_of()), now=NOW))
    assert len(buttons) == 5


def test_broken_operator_alert_template_falls_back(tmp_path):
    (tmp_path / "alert.json.j2").write_text("{not json", encoding="utf-8")
    n = notice(run=run_of())
    m = Renderer(str(tmp_path)).render_alert(n, now=NOW)
    assert m.blocks == render_alert(n, now=NOW).blocks


def test_storm_digest_lists_each_deployment_and_stays_within_limits():
    from bot.slack.render import render_alert_digest

    notices = [notice(Reason.NEW_INCIDENT, run=run_of()) for _ in range(3)]
    notices = [
        n.model_copy(
            update={"target": n.target.model_copy(update={"deployment_name": f"<!channel> dep-{i}"})}
        )
        for i, n in enumerate(notices)
    ]
    m = render_alert_digest(notices, now=NOW)
    assert problems(m) == []
    text = json.dumps(m.to_slack(), ensure_ascii=False)
    assert "<!channel>" not in text and "&lt;!channel&gt; dep-2" in text
    assert "3 more deployments" in m.text
    flood = render_alert_digest(notices * 200, now=NOW)
    assert problems(flood) == []
    assert "more deployments" in json.dumps(flood.blocks[-2:] + flood.blocks[-1:])


def test_storm_digest_lists_failed_and_restarting_deployments_first_by_what_is_wrong():
    from bot.slack.render import render_alert_digest
    from bot.watch.lifecycle import IncidentState

    def with_root(n: Notice, name: str, root: Condition | None) -> Notice:
        incident = IncidentState(announced=(root,), root=root) if root else IncidentState()
        t = n.target
        return n.model_copy(
            update={
                "target": t.model_copy(
                    update={
                        "deployment_name": name,
                        "state": t.state.model_copy(update={"incident": incident}),
                    }
                )
            }
        )

    base = notice(Reason.NEW_INCIDENT, run=run_of())
    notices = [
        with_root(base, "risky", Condition.RISK),
        with_root(base, "looping", Condition.RESTARTING),
        with_root(base, "broken", Condition.FAILED),
    ]
    m = render_alert_digest(notices, now=NOW)
    assert problems(m) == []
    assert m.blocks[0]["text"]["text"] == ":rotating_light: Alerts on 3 more deployments"
    rows = [b["text"]["text"] for b in m.blocks if str(b.get("block_id", "")).startswith("dig.")]
    assert rows[0].startswith(":red_circle: job failed · *broken*")
    assert rows[1].startswith(":arrows_counterclockwise: restarting · *looping*")
    assert rows[2].startswith(":red_circle: High · *risky*")
