"""Template contexts for a watch's alerts: the anchor of an alert episode, the digest of an
alert storm, and the follow-ups in an alert's thread. Values come out escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.risk import HIGH, LOW, MID, Risk
from bot.flink.models import Symptom
from bot.slack.blocks import bold, code, cut, escape_mrkdwn, one_line
from bot.slack.buttons import action_value, target_value
from bot.slack.format import (
    _LINE_NAME_MAX,
    _LINE_SYMPTOM_MAX,
    _NAME_MAX,
    _button,
    _health,
    _health_plain,
    _plural,
    _risk_phrase,
    _snoozed_until,
    console_link,
    interval_text,
    slack_date,
    threshold_text,
)
from bot.watch.model import Notice, WatchTarget
from bot.watch.policy import Reason

# An alert shows what to do first; the full list is one Re-run away.
_ALERT_SYMPTOMS = 3
_ALERT_NAME_MAX = 120
_ALERT_DESCRIPTION_MAX = 300
_ALERT_RECOMMENDATION_MAX = 600
_RESOLVED = (":white_check_mark:", LOW.colour)


def _all_symptoms(run: DiagnosisRun) -> list[Symptom]:
    return [s for items in run.diagnosis.symptoms.by_category().values() for s in items]


def _deployment_field(t: WatchTarget) -> str:
    ident = code(t.deployment_id, _LINE_NAME_MAX)
    if t.deployment_name:
        return f"{one_line(t.deployment_name, _ALERT_NAME_MAX)} {ident}"
    return ident


def _alert_symptom(s: Symptom) -> str:
    lines = [bold(s.name, _NAME_MAX) or "*(unnamed symptom)*"]
    if s.recommendation.strip():
        rec = cut(escape_mrkdwn(s.recommendation.strip()), _ALERT_RECOMMENDATION_MAX)
        lines.append(f":bulb: *What to do:* {rec}")
    elif s.description.strip():
        lines.append(cut(escape_mrkdwn(s.description.strip()), _ALERT_DESCRIPTION_MAX))
    return "\n".join(lines)


def _notice_target(notice: Notice) -> Target | None:
    """The job an alert's Re-run button diagnoses: the current one, when there is one."""
    if notice.run is not None:
        return notice.run.target
    t = notice.target
    if not t.job_id:
        return None
    return Target(
        workspace=t.workspace,
        namespace=t.namespace,
        deployment_id=t.deployment_id,
        job_id=t.job_id,
        deployment_name=t.deployment_name,
    )


def _digest_context(notices: Sequence[Notice], now: datetime) -> dict[str, Any]:
    ordered = sorted(notices, key=lambda n: Risk.parse(n.decision_risk), reverse=True)
    rows = []
    for i, n in enumerate(ordered):
        t = n.target
        risk = Risk.parse(n.decision_risk)
        health = n.run.diagnosis.health_score if n.run is not None else t.state.last_health_score
        line = f"{risk.emoji} {bold(t.label, _LINE_NAME_MAX)} · {code(t.namespace, 60)} · {escape_mrkdwn(risk.label)} · {_health_plain(health)}"
        top = _top_of(n)
        if top:
            line += f"\n{one_line(top, _NAME_MAX)}"
        rows.append({"block_id": f"dig.{i}", "text": line})
    names = ", ".join(n.target.label for n in ordered[:5]) + ("…" if len(ordered) > 5 else "")
    return {
        "text": cut(escape_mrkdwn(f"Risk rose on {_plural(len(ordered), 'more deployment')}: {names}"), 2900),
        "header": cut(f":rotating_light: Risk rose on {_plural(len(ordered), 'more deployment')}", 150),
        "intro": f"Too many alerts at once for one message each, as of {slack_date(now)}.",
        "rows": rows,
        "footer": "Changes to each are posted in this thread. `/flinkdiag watches` lists them all; "
        "`/flinkdiag deployment <name>` diagnoses one.",
    }


def _top_of(notice: Notice) -> str | None:
    if notice.run is not None:
        for sym in _all_symptoms(notice.run):
            if sym.name or sym.description:
                return sym.name or sym.description
    return notice.target.top_symptom


def _alert_actions(notice: Notice, resolved: bool) -> list[dict[str, Any]]:
    t = notice.target
    actions: list[dict[str, Any]] = []
    target = _notice_target(notice)
    value = action_value(target) if target is not None else None
    if value is not None:
        actions.append(_button("rerun_alert", ":repeat: Re-run diagnosis", value=value, style="primary"))
    tid = target_value(t.id)
    if not resolved:
        actions.append(_button("snooze_1h", ":zzz: Snooze 1h", value=tid))
        actions.append(_button("snooze_24h", ":zzz: Snooze 24h", value=tid))
    unwatch = _button("unwatch_target", "Unwatch", value=tid, style="danger")
    # The dialog's text allows 300 characters (slack_sdk checks it); the name is cut to leave room.
    unwatch["confirm"] = {
        "title": "Stop watching?",
        "text": f"Stop watching {bold(t.label, 200)} in this channel?",
        "confirm": "Unwatch",
        "deny": "Keep watching",
    }
    actions.append(unwatch)
    url = console_link(target)
    if url is not None:
        actions.append(_button("open_console", ":link: Open in console", url=url))
    for a in actions:
        a.setdefault("confirm", None)
    return actions


def _alert_context(notice: Notice, now: datetime) -> dict[str, Any]:
    t, s, run = notice.target, notice.target.state, notice.run
    resolved = notice.reason is Reason.BACK_TO_NORMAL and s.announced_risk is None
    risk = Risk.parse(notice.decision_risk)
    label = one_line(t.label, _ALERT_NAME_MAX)
    phrase = one_line(_risk_phrase(risk), 60)
    health_score = run.diagnosis.health_score if run is not None else s.last_health_score
    as_of = (run.service_time or run.diagnosed_at) if run is not None else (s.last_checked_at or now)
    job = run.target.job_id if run is not None else t.job_id
    threshold = escape_mrkdwn(threshold_text(t.min_risk))
    facts = [
        f"*Deployment*\n{_deployment_field(t)}",
        f"*Namespace*\n{code(t.namespace)}",
        f"*Workspace*\n{code(t.workspace)}",
        f"*Job*\n{code(job) if job else '_no running job known_'}",
        f"*Health*\n{_health(health_score)}",
        f"*Watch*\n{threshold}, {interval_text(t.interval_seconds)}",
        f"*As of*\n{slack_date(as_of)}",
    ]
    observed = run.risk if run is not None else None
    if observed is not None and observed.raw != risk.raw and not resolved:
        # The header shows the confirmed level; a different latest sighting is not confirmed yet.
        facts.append(f"*Latest check*\n{observed.emoji} {one_line(observed.label, 60)} (not confirmed yet)")

    symptoms: list[dict[str, Any]] = []
    more = None
    top = None
    if run is not None:
        found = _all_symptoms(run)
        if found:
            top = found[0].name or found[0].description
        if not resolved:
            for i, sym in enumerate(found[:_ALERT_SYMPTOMS]):
                symptoms.append({"block_id": f"sym.{i}", "text": _alert_symptom(sym)})
            if len(found) > _ALERT_SYMPTOMS:
                n = len(found) - _ALERT_SYMPTOMS
                more = f"…and {_plural(n, 'more symptom')}: press *Re-run diagnosis* for the full list."
        count = len(found)
    else:
        count = 0
        if t.top_symptom and not resolved:
            top = t.top_symptom
            shown = f"*Top symptom:* {one_line(t.top_symptom, _NAME_MAX)}"
            symptoms.append({"block_id": "sym.0", "text": shown})

    health = _health_plain(health_score)
    where = f"{one_line(t.label, _ALERT_NAME_MAX)} (namespace {one_line(t.namespace, 80)})"
    if resolved:
        emoji, colour = _RESOLVED
        header = f"{emoji} Back to normal: {label}"
        now_phrase = f"risk is {one_line(risk.label, 60)} again"
        text = f"Back to normal: {where}: {now_phrase}, {health}"
        status = f":white_check_mark: Back to normal: {now_phrase} (below the watch's threshold)."
        summary = f"*Back to normal* · {health} · {threshold}"
    else:
        colour = risk.colour
        header = f"{risk.emoji} {phrase}: {label}"
        text = f"{phrase}: {where}: {health}"
        if run is not None:
            text += f", {_plural(count, 'symptom')}"
        if top:
            text += f". Top: {one_line(top, _LINE_SYMPTOM_MAX)}"
        status = None
        summary = f"{bold(_risk_phrase(risk), 60)} · {health} · {_plural(count, 'symptom')} · {threshold}"
    until = _snoozed_until(s, now)
    snoozed = f":zzz: Snoozed until {slack_date(until)}" if until is not None else None
    return {
        "text": text,
        "header": header,
        "colour": colour,
        "facts": facts,
        "status": status,
        "symptoms": symptoms,
        "more": more,
        "snoozed": snoozed,
        "actions": _alert_actions(notice, resolved),
        "summary": summary,
    }


def _previous_level(new: Risk, min_risk: str) -> Risk | None:
    """The level announced before a further rise, when the threshold leaves only one candidate.

    A Notice carries the state after the rise, so the earlier level is inferred: it was at or
    above the threshold and below the new level.
    """
    threshold = Risk.parse(min_risk)
    candidates = [r for r in (LOW, MID, HIGH) if threshold.rank <= r.rank < new.rank]
    return candidates[0] if len(candidates) == 1 else None


def _followup_context(notice: Notice, now: datetime, previous_risk: str | None) -> dict[str, Any]:
    t, s, run = notice.target, notice.target.state, notice.run
    name = bold(t.label, _ALERT_NAME_MAX) or code(t.deployment_id, _ALERT_NAME_MAX)
    plain = one_line(t.label, _ALERT_NAME_MAX)
    risk = Risk.parse(notice.decision_risk)
    level = one_line(risk.label, 60)
    health_score = run.diagnosis.health_score if run is not None else s.last_health_score
    reason = notice.reason
    detail = None
    if reason is Reason.FURTHER_RISE:
        before = Risk.parse(previous_risk) if previous_risk else _previous_level(risk, t.min_risk)
        if before is not None:
            rise_md = f"{one_line(before.label, 60)} → {bold(risk.label, 60)}"
            rise = f"{one_line(before.label, 60)} → {level}"
        else:
            rise_md, rise = f"now {bold(risk.label, 60)}", f"now {level}"
        sentence = f"{risk.emoji} Risk rose further on {name}: {rise_md}"
        text = f"Risk rose further on {plain}: {rise}"
        found = _all_symptoms(run) if run is not None else []
        if found:
            detail = _alert_symptom(found[0])
        elif t.top_symptom:
            detail = f"*Top symptom:* {one_line(t.top_symptom, _NAME_MAX)}"
    elif reason is Reason.BACK_TO_NORMAL:
        health = _health_plain(health_score)
        again = f"{bold(risk.label, 60)} again ({health})"
        sentence = f":white_check_mark: Back to normal: risk on {name} is {again}."
        text = f"Back to normal: risk on {plain} is {level} again ({health})"
    elif reason is Reason.NO_RUNNING_JOB:
        sentence = f":black_circle: {name} has no running job any more; its risk is unknown until a job runs."
        text = f"{plain} has no running job any more; its risk is unknown until a job runs."
    else:
        # FIRST_ALERT and the rest normally go to the anchor; as a note they still say what is true.
        sentence = f"{risk.emoji} {bold(_risk_phrase(risk), 60)} on {name} ({_health_plain(health_score)})."
        text = f"{one_line(_risk_phrase(risk), 60)} on {plain} ({_health_plain(health_score)})"
    when = (run.service_time or run.diagnosed_at) if run is not None else (s.last_checked_at or now)
    bits = [f"namespace {code(t.namespace)}", f"workspace {code(t.workspace)}"]
    job = run.target.job_id if run is not None else t.job_id
    if job and reason is not Reason.NO_RUNNING_JOB:
        bits.append(f"job {code(job)}")
    bits.append(slack_date(when))
    return {"text": text, "sentence": sentence, "detail": detail, "where": " · ".join(bits)}
