"""Template contexts for a watch's incidents: the root message (the worst open condition: a
failed job, a restart loop, risk, low health), the digest of an alert storm, and the replies in
an incident's thread (one line per change). Values come out escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.diagnosis.report import DiagnosisRun, Target
from bot.diagnosis.risk import HIGH, LOW, MID, Risk, health_band
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
    conditions_text,
    console_link,
    interval_text,
    slack_date,
    snooze_text,
)
from bot.watch.lifecycle import Change, ChangeKind, Condition, Reason
from bot.watch.model import JobFacts, Notice, WatchTarget

# An alert shows what to do first; the full list is one Re-run away.
_ALERT_SYMPTOMS = 3
_ALERT_NAME_MAX = 120
_ALERT_DESCRIPTION_MAX = 300
_ALERT_RECOMMENDATION_MAX = 600
_RESOLVED = (":white_check_mark:", LOW.colour)
# A failure's message is the service's (often a stack trace): the root shows its start.
_FAILURE_MESSAGE_MAX = 1200
_FAILURE_REASON_MAX = 200
_FAILED = (":red_circle:", HIGH.colour)
_RESTARTING = (":arrows_counterclockwise:", HIGH.colour)


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


def _digest_rank(n: Notice) -> tuple[int, Risk]:
    """Worst first: failed, restarting, then by risk (the order of the roots)."""
    root = n.target.state.incident.root
    order = list(Condition).index(root) if root is not None else len(Condition)
    return (-order, Risk.parse(n.decision_risk))


def _digest_context(notices: Sequence[Notice], now: datetime) -> dict[str, Any]:
    ordered = sorted(notices, key=_digest_rank, reverse=True)
    rows = []
    for i, n in enumerate(ordered):
        t = n.target
        risk = Risk.parse(n.decision_risk)
        health = n.run.diagnosis.health_score if n.run is not None else t.state.last_health_score
        root = t.state.incident.root
        what = (
            f"{_FAILED[0]} job failed"
            if root is Condition.FAILED
            else f"{_RESTARTING[0]} restarting"
            if root is Condition.RESTARTING
            else f"{risk.emoji} {escape_mrkdwn(risk.label)}"
        )
        line = f"{what} · {bold(t.label, _LINE_NAME_MAX)} · {code(t.namespace, 60)} · {_health_plain(health)}"
        top = _top_of(n)
        if top:
            line += f"\n{one_line(top, _NAME_MAX)}"
        rows.append({"block_id": f"dig.{i}", "text": line})
    names = ", ".join(n.target.label for n in ordered[:5]) + ("…" if len(ordered) > 5 else "")
    return {
        # Not "risk rose": a storm's alerts may be failed jobs or restart loops as well.
        "text": cut(escape_mrkdwn(f"Alerts on {_plural(len(ordered), 'more deployment')}: {names}"), 2900),
        "header": cut(f":rotating_light: Alerts on {_plural(len(ordered), 'more deployment')}", 150),
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
        actions.append(_button("snooze_redeploy", ":zzz: Snooze until redeploy", value=tid))
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


def _window(minutes: int) -> str:
    return "the last hour" if minutes == 60 else f"the last {_plural(minutes, 'minute')}"


def _restart_phrase(restarts: int | None, starts: int | None, window_minutes: int) -> str:
    """`7 restarts since the last check` / `3 new jobs within the last hour`. Plain text."""
    bits = []
    if restarts:
        bits.append(f"{_plural(restarts, 'restart')} since the last check")
    if starts and starts > 1:
        bits.append(f"{_plural(starts, 'new job')} within {_window(window_minutes)}")
    return ", ".join(bits) or "restarting"


def _failure_lines(job: JobFacts | None) -> list[str]:
    if job is None:
        return []
    lines = []
    if job.failure_reason:
        lines.append(f"*Reason:* {one_line(job.failure_reason, _FAILURE_REASON_MAX)}")
    if job.failure_message:
        message = cut(escape_mrkdwn(job.failure_message.strip()), _FAILURE_MESSAGE_MAX)
        lines.append(f"*Message:* {message}")
    if job.failed_at is not None:
        lines.append(f"*Failed* {slack_date(job.failed_at)}")
    return lines


def _last_diagnosis(notice: Notice) -> str | None:
    """The last diagnosis the watch holds (a failed job is not diagnosed again)."""
    t, s = notice.target, notice.target.state
    risk = Risk.parse(s.incident.confirmed_risk or s.last_observed_risk)
    bits = []
    if risk.raw is not None:
        bits.append(f"{risk.emoji} {one_line(_risk_phrase(risk), 60)}")
    if t.top_symptom:
        bits.append(f"top symptom: {one_line(t.top_symptom, _NAME_MAX)}")
    return "*Last diagnosis:* " + " · ".join(bits) if bits else None


_CONDITION_WORDS = {
    Condition.FAILED: "job failed",
    Condition.RESTARTING: "restarting",
    Condition.RISK: "risk",
    Condition.HEALTH: "low health",
}


def _health_of(notice: Notice) -> int | None:
    run, s = notice.run, notice.target.state
    if run is not None and run.diagnosis.health_score is not None:
        return run.diagnosis.health_score
    if notice.job is not None and notice.job.health_score is not None:
        return notice.job.health_score
    return s.last_health_score


def _alert_context(notice: Notice, now: datetime) -> dict[str, Any]:
    t, s, run = notice.target, notice.target.state, notice.run
    incident = s.incident
    resolved = not incident.incident_open
    root = incident.root
    risk = Risk.parse(notice.decision_risk)
    label = one_line(t.label, _ALERT_NAME_MAX)
    phrase = one_line(_risk_phrase(risk), 60)
    health_score = _health_of(notice)
    as_of = (run.service_time or run.diagnosed_at) if run is not None else (s.last_checked_at or now)
    if run is not None:
        job = run.target.job_id
    elif notice.job is not None and notice.job.job_id:
        job = notice.job.job_id
    else:
        job = t.job_id
    status_word = notice.job.status if notice.job is not None else s.last_job_status
    watch_text = escape_mrkdwn(conditions_text(t.conditions))
    facts = [
        f"*Deployment*\n{_deployment_field(t)}",
        f"*Namespace*\n{code(t.namespace)}",
        f"*Workspace*\n{code(t.workspace)}",
        f"*Job*\n{code(job) if job else '_no job known_'}"
        + (f" ({one_line(status_word.lower(), 30)})" if job and status_word else ""),
        f"*Risk*\n{risk.emoji} {one_line(risk.label, 60)}" if risk.raw else "*Risk*\nnot reported",
        f"*Health*\n{_health(health_score)}",
        f"*Watch*\n{watch_text}, {interval_text(t.interval_seconds)}",
        f"*As of*\n{slack_date(as_of)}",
    ]
    observed = run.risk if run is not None else None
    if observed is not None and observed.raw != risk.raw and not resolved and root is Condition.RISK:
        # The header shows the confirmed level; a different latest sighting is not confirmed yet.
        facts.append(f"*Latest check*\n{observed.emoji} {one_line(observed.label, 60)} (not confirmed yet)")

    symptoms: list[dict[str, Any]] = []
    more = None
    top = None
    count = 0
    if run is not None and root is not Condition.FAILED:
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
    elif t.top_symptom and not resolved and root is not Condition.FAILED:
        top = t.top_symptom
        symptoms.append({"block_id": "sym.0", "text": f"*Top symptom:* {one_line(t.top_symptom, _NAME_MAX)}"})

    health = _health_plain(health_score)
    where = f"{one_line(t.label, _ALERT_NAME_MAX)} (namespace {one_line(t.namespace, 80)})"
    status = None
    also = [c for c in incident.announced if c is not root]
    if resolved:
        emoji, colour = _RESOLVED
        header = f"{emoji} Back to normal: {label}"
        text = f"Back to normal: {where}: {health}"
        status = ":white_check_mark: Back to normal: nothing this watch alerts on is wrong now."
        summary = f"*Back to normal* · {health} · {watch_text}"
    elif root is Condition.FAILED:
        emoji, colour = _FAILED
        header = f"{emoji} Job failed: {label}"
        reason = notice.job.failure_reason if notice.job is not None else None
        text = f"Job failed: {where}" + (f": {one_line(reason, 200)}" if reason else "")
        lines = _failure_lines(notice.job) or ["The current job is FAILED; the service gave no reason."]
        last = _last_diagnosis(notice)
        if last:
            lines.append(last)
        status = "\n".join(lines)
        summary = f"*Job failed* · {health} · {watch_text}"
    elif root is Condition.RESTARTING:
        emoji, colour = _RESTARTING
        what = _restart_phrase(incident.restart_growth, len(incident.starts), notice.window_minutes)
        header = f"{emoji} Restarting: {label}"
        text = f"Restarting: {where}: {what}"
        status = f"*Restart loop:* {escape_mrkdwn(what)}."
        summary = f"*Restarting* · {health} · {watch_text}"
    elif root is Condition.HEALTH:
        band = health_band(health_score)
        colour = HIGH.colour if band.label == "unhealthy" else MID.colour
        header = f"{band.emoji} Health {band.label}: {label}"
        text = f"Health {band.label}: {where}: {health}"
        status = f"*Health* {_health(health_score)}, below the watch's {t.conditions.settings.min_health}."
        summary = f"*Health {band.label}* · {health} · {watch_text}"
    else:
        colour = risk.colour
        header = f"{risk.emoji} {phrase}: {label}"
        text = f"{phrase}: {where}: {health}"
        if run is not None:
            text += f", {_plural(count, 'symptom')}"
        if top:
            text += f". Top: {one_line(top, _LINE_SYMPTOM_MAX)}"
        summary = f"{bold(_risk_phrase(risk), 60)} · {health} · {_plural(count, 'symptom')} · {watch_text}"
    if also:
        shown = ", ".join(_CONDITION_WORDS[c] for c in also)
        line = f"*Also open:* {shown}"
        status = f"{status}\n{line}" if status else line
    snooze = snooze_text(s, now)
    snoozed = f":zzz: Snoozed {snooze}" if snooze is not None else None
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


def _change_line(change: Change, notice: Notice, name: str) -> tuple[str, str]:
    """One change as (mrkdwn, plain text)."""
    k = change.kind
    health = _health_plain(_health_of(notice))
    if k is ChangeKind.JOB_FAILED:
        reason = notice.job.failure_reason if notice.job is not None else None
        plain = "the job failed" + (f": {one_line(reason, 200)}" if reason else "")
        md = f":red_circle: *Job failed* on {name}" + (
            f": {one_line(reason, _FAILURE_REASON_MAX)}" if reason else "."
        )
        return md, plain
    if k is ChangeKind.RUNNING_AGAIN:
        return f":large_green_circle: {name} is *running again* ({health}).", f"running again ({health})"
    if k is ChangeKind.FAILURE_ENDED:
        return f":black_circle: The failed job of {name} was stopped.", "the failed job was stopped"
    if k is ChangeKind.RESTARTING:
        what = _restart_phrase(change.restarts, change.starts, notice.window_minutes)
        return (
            f":arrows_counterclockwise: {name} is *restarting*: {escape_mrkdwn(what)}.",
            f"restarting: {what}",
        )
    if k is ChangeKind.RESTARTS_STOPPED:
        return f":large_green_circle: {name} stopped restarting.", "stopped restarting"
    if k in (ChangeKind.RISK_RAISED, ChangeKind.RISK_ROSE):
        r = Risk.parse(change.level)
        verb = "Risk rose further" if k is ChangeKind.RISK_ROSE else "Risk rose"
        before = (
            Risk.parse(notice.previous_risk) if k is ChangeKind.RISK_ROSE and notice.previous_risk else None
        )
        to_md = f"{one_line(before.label, 60)} → {bold(r.label, 60)}" if before else bold(r.label, 60)
        to = f"{before.label} → {r.label}" if before else r.label
        return f"{r.emoji} {verb} on {name}: {to_md} ({health}).", f"{verb.lower()}: {to} ({health})"
    if k is ChangeKind.RISK_CLEARED:
        r = Risk.parse(notice.decision_risk)
        again = f"{one_line(r.label, 60)} again" if r.raw else "below the threshold"
        return f":white_check_mark: Risk on {name} is {again}.", f"risk {again}"
    if k in (ChangeKind.HEALTH_LOW, ChangeKind.HEALTH_WORSE):
        verb = "Health is low" if k is ChangeKind.HEALTH_LOW else "Health got worse"
        score = _health_of(notice)
        return f"{health_band(score).emoji} {verb} on {name}: {_health(score)}.", f"{verb.lower()}: {health}"
    if k is ChangeKind.HEALTH_RECOVERED:
        return (
            f":large_green_circle: Health on {name} recovered: {_health(_health_of(notice))}.",
            f"health recovered ({health})",
        )
    if k is ChangeKind.NO_RUNNING_JOB:
        return (
            f":black_circle: {name} has no running job any more; its risk is unknown until a job runs.",
            "no running job any more",
        )
    if k is ChangeKind.SNOOZE_ENDED:
        return (
            f":alarm_clock: The snooze on {name} ended: the deployment started a new job.",
            "snooze ended: a new job started",
        )
    return escape_mrkdwn(k.value), k.value


def _followup_context(notice: Notice, now: datetime, previous_risk: str | None = None) -> dict[str, Any]:
    t, s, run = notice.target, notice.target.state, notice.run
    name = bold(t.label, _ALERT_NAME_MAX) or code(t.deployment_id, _ALERT_NAME_MAX)
    plain = one_line(t.label, _ALERT_NAME_MAX)
    lines = [_change_line(c, notice, name) for c in notice.changes]
    closed = notice.reason is Reason.BACK_TO_NORMAL
    if closed:
        lines.append(
            (f":white_check_mark: *Back to normal* on {name}: this incident is over.", "back to normal")
        )
    if not lines:
        lines.append((f"{name}: {escape_mrkdwn(notice.reason.value)}", notice.reason.value))
    sentence = cut("\n".join(md for md, _ in lines), 2900)
    # the plain parts are built from escaped pieces (one_line) already
    text = cut(f"{plain}: " + "; ".join(p for _, p in lines), 2900)
    detail = None
    kinds = {c.kind for c in notice.changes}
    if kinds & {ChangeKind.RISK_RAISED, ChangeKind.RISK_ROSE}:
        found = _all_symptoms(run) if run is not None else []
        if found:
            detail = _alert_symptom(found[0])
        elif t.top_symptom:
            detail = f"*Top symptom:* {one_line(t.top_symptom, _NAME_MAX)}"
    elif ChangeKind.JOB_FAILED in kinds:
        detail = "\n".join(_failure_lines(notice.job)) or None
    when = (run.service_time or run.diagnosed_at) if run is not None else (s.last_checked_at or now)
    bits = [f"namespace {code(t.namespace)}", f"workspace {code(t.workspace)}"]
    job = notice.job.job_id if notice.job is not None else None
    if job:
        bits.append(f"job {code(job)}")
    bits.append(slack_date(when))
    return {"text": text, "sentence": sentence, "detail": detail, "where": " · ".join(bits)}
