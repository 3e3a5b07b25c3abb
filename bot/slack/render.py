"""Domain objects in, Slack messages out: jinja2 templates lay out Block Kit, Python does the rest.

Every string handed to a template is already escaped, shortened and composed here; templates
only loop, branch and pass values through `tojson`, so an operator's template can rearrange a
message but cannot make it unsafe. After rendering, `blocks.enforce_limits` makes the result fit
Slack's limits. An operator template that fails (bad JSON, a missing variable, blocks Slack would
refuse) is logged and replaced by the packaged one, so one bad file does not silence the bot.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ValidationError

from bot.commands import format_duration
from bot.diagnosis.report import Change, DiagnosisRun, SymptomKey, Target
from bot.diagnosis.risk import HIGH, LOW, MID, Risk, health_band
from bot.flink.models import Symptom
from bot.slack import blocks as bk
from bot.slack.blocks import Message, bold, code, cut, escape_mrkdwn, one_line
from bot.watch.engine import Notice, Watch, WatchTarget
from bot.watch.policy import Reason, TargetState
from bot.watch.report import FleetReport, ReportRow

log = logging.getLogger(__name__)

# The packaged templates live at the top of the checkout, next to `bot/`.
PACKAGED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

CATEGORY_TITLES: dict[str, str] = {
    "startup": ":rocket: Startup",
    "runtime": ":gear: Runtime",
    "troubleshooting": ":mag: Troubleshooting",
    "state": ":floppy_disk: State",
    "autopilot": ":robot_face: Autopilot",
    "others": ":jigsaw: Other",
}

# Per-symptom caps keep one symptom readable and far inside a section's 3000 characters.
_NAME_MAX = 200
_DESCRIPTION_MAX = 1500
_RECOMMENDATION_MAX = 1000
_CHANGE_NAMES_MAX = 10
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")

__all__ = [
    "ActionValue",
    "Message",
    "Renderer",
    "action_value",
    "blocks_to_text",
    "interval_text",
    "message_to_text",
    "parse_action_value",
    "parse_target_value",
    "render_alert",
    "render_alert_followup",
    "render_defaults",
    "render_diagnosis",
    "render_error",
    "render_job_choice",
    "render_progress",
    "render_report",
    "render_text",
    "render_usage",
    "render_watches",
    "target_value",
    "threshold_text",
]


class TemplateProblem(Exception):
    """A template rendered something that is not a valid message."""


# --- button values --------------------------------------------------------------------------


class ActionValue(BaseModel):
    """What a Re-run / Share / choice button carries back to the bot."""

    target: Target
    run: str | None = None
    share: bool = False
    # Re-run follows the deployment to its current job (the message came from `deployment …`)
    follow: bool = False


def _compact_json(data: dict[str, Any]) -> str:
    s = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Slack entity-encodes `&<>` in payloads it echoes back; \u escapes keep the value identical
    # on the way back and keep mention syntax out of the message JSON.
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def action_value(
    target: Target, run_id: str | None = None, *, share: bool = False, follow: bool = False
) -> str | None:
    """A button value naming `target` (<= 2000 chars), or None when even the bare ids don't fit.

    The deployment name goes first when space runs short: the ids alone are enough to re-run.
    """
    full: dict[str, Any] = {
        "ws": target.workspace,
        "ns": target.namespace,
        "dep": target.deployment_id,
        "job": target.job_id,
        "name": target.deployment_name,
        "region": target.region,
        "run": run_id,
        "share": True if share else None,
        "follow": True if follow else None,
    }
    full = {k: v for k, v in full.items() if v is not None}
    for drop in ((), ("name",), ("name", "run")):
        value = _compact_json({k: v for k, v in full.items() if k not in drop})
        if len(value) <= bk.MAX_BUTTON_VALUE:
            return value
    log.warning("button_value_too_long deployment_id=%s", target.deployment_id[:80])
    return None


def parse_action_value(value: str) -> ActionValue:
    """Inverse of `action_value`. Raises ValueError on anything else."""
    try:
        d = json.loads(value)
        target = Target(
            workspace=d["ws"],
            namespace=d["ns"],
            deployment_id=d["dep"],
            job_id=d["job"],
            deployment_name=d.get("name"),
            region=d.get("region"),
        )
        return ActionValue(
            target=target,
            run=d.get("run"),
            share=bool(d.get("share", False)),
            follow=bool(d.get("follow", False)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
        raise ValueError("not a flinkdiag button value") from e


# --- small formatting helpers ---------------------------------------------------------------


def slack_date(when: datetime) -> str:
    """Slack's date markup: each reader sees their own time zone; the fallback is UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def user_mention(user_id: str) -> str:
    """`<@U…>` for a real Slack user id, escaped text for anything else."""
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_mrkdwn(user_id)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _risk_phrase(risk: Risk) -> str:
    return f"{risk.label} risk" if risk.raw is not None else "Risk not reported"


def _names(keys: Sequence[SymptomKey]) -> str:
    shown = [bold(k.name, 80) or "(unnamed)" for k in keys[:_CHANGE_NAMES_MAX]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" …and {more} more" if more > 0 else "")


# --- diagnosis ------------------------------------------------------------------------------


def _facts(run: DiagnosisRun, symptom_count: int) -> list[str]:
    t, d = run.target, run.diagnosis
    band = health_band(d.health_score)
    health = (
        f"{band.emoji} {d.health_score}/100 ({band.label})"
        if d.health_score is not None
        else f"{band.emoji} not reported"
    )
    deployment = code(t.deployment_id)
    if t.deployment_name:
        deployment = f"{one_line(t.deployment_name, _NAME_MAX)} {deployment}"
    when = run.service_time or run.diagnosed_at
    facts = [
        f"*Health*\n{health}",
        f"*Symptoms*\n{symptom_count}",
        f"*Deployment*\n{deployment}",
        f"*Job*\n{code(t.job_id)}",
        f"*Namespace*\n{code(t.namespace)}",
        f"*Workspace*\n{code(t.workspace)}",
        f"*Diagnosed*\n{slack_date(when)}",
    ]
    if t.region:
        facts.append(f"*Region*\n{code(t.region)}")
    return facts


def _categories(run: DiagnosisRun) -> list[dict[str, Any]]:
    out = []
    n = 0
    for category, symptoms in run.diagnosis.symptoms.by_category().items():
        if not symptoms:
            continue
        items = []
        for s in symptoms:
            name = bold(s.name, _NAME_MAX) or "*(unnamed symptom)*"
            lines = [name]
            if s.description.strip():
                lines.append(cut(escape_mrkdwn(s.description.strip()), _DESCRIPTION_MAX))
            if s.recommendation.strip():
                lines.append(":bulb: " + cut(escape_mrkdwn(s.recommendation.strip()), _RECOMMENDATION_MAX))
            items.append(
                {
                    "block_id": f"sym.{n}",
                    "text": "\n".join(lines),
                    "name": escape_mrkdwn(s.name),
                    "description": escape_mrkdwn(s.description),
                    "recommendation": escape_mrkdwn(s.recommendation),
                }
            )
            n += 1
        title = CATEGORY_TITLES.get(category, escape_mrkdwn(category.title()))
        out.append(
            {
                "key": category,
                "block_id": f"cat.{category}",
                "title": f"*{title}* · {len(items)}",
                "symptoms": items,
            }
        )
    return out


def _change_text(change: Change) -> str:
    before, after = Risk.parse(change.risk_before), Risk.parse(change.risk_after)
    lines = [f"*Since {slack_date(change.previous_at)}*"]
    if change.job_changed:
        lines.append(
            f":arrows_counterclockwise: The deployment restarted: job {code(change.job_before, 80)} → "
            f"{code(change.job_after, 80)}"
        )
    if change.nothing_changed:
        lines.append("Nothing changed.")
        return "\n".join(lines)
    was, now = one_line(before.label, 60), bold(after.label, 60)
    if change.direction == "up":
        lines.append(f":arrow_up: Risk up: {was} → {now}")
    elif change.direction == "down":
        lines.append(f":arrow_down: Risk down: {was} → {now}")
    else:
        lines.append(f":left_right_arrow: Risk unchanged: {one_line(after.label, 60)}")
    delta = change.health_delta
    if delta is not None:
        lines.append(f"Health: {change.health_before} → {change.health_after} ({delta:+d})")
    elif change.health_before != change.health_after:
        fmt = lambda v: "not reported" if v is None else str(v)  # noqa: E731
        lines.append(f"Health: {fmt(change.health_before)} → {fmt(change.health_after)}")
    if change.appeared:
        lines.append(f":new: Appeared ({len(change.appeared)}): {_names(change.appeared)}")
    if change.cleared:
        lines.append(f":white_check_mark: Cleared ({len(change.cleared)}): {_names(change.cleared)}")
    return "\n".join(lines)


def _button(
    action_id: str, text: str, *, value: str | None = None, url: str | None = None, style: str | None = None
) -> dict[str, Any]:
    # Every key present: templates run with StrictUndefined, so a missing one would be an error.
    return {"action_id": action_id, "text": text, "value": value, "url": url, "style": style}


def _safe_url(url: str | None) -> str | None:
    """Percent-encode what an id put in a URL path; only https links are offered.

    `Target.console_url` pastes ids into the path as they are, and ids come from the API.
    """
    if not url or not url.startswith("https://"):
        return None
    return quote(url, safe="/:?=&#%~.-_+,;@!$'()*")


def _diagnosis_actions(
    target: Target, run_id: str | None, ephemeral: bool, follow: bool
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    value = action_value(target, run_id, follow=follow)
    if value is not None:
        actions.append(_button("rerun_diagnosis", ":repeat: Re-run diagnosis", value=value, style="primary"))
        if ephemeral:
            actions.append(_button("share_diagnosis", ":mega: Share to channel", value=value))
    url = _safe_url(target.console_url())
    if url is not None:
        actions.append(_button("open_console", ":link: Open in console", url=url))
    return actions


def _diagnosis_context(
    run: DiagnosisRun,
    change: Change | None,
    run_id: str | None,
    shared_by: str | None,
    ephemeral: bool,
    follow: bool = False,
) -> dict[str, Any]:
    t, d = run.target, run.diagnosis
    risk = run.risk
    categories = _categories(run)
    count = sum(len(c["symptoms"]) for c in categories)
    label = one_line(t.deployment_name, 120) or one_line(t.deployment_id, 120)
    health = f"health {d.health_score}/100" if d.health_score is not None else "health not reported"
    phrase = one_line(_risk_phrase(risk), 60)
    summary_bits = [bold(_risk_phrase(risk), 60), health, _plural(count, "symptom")]
    if d.diagnose_id:
        summary_bits.append(f"diagnosis {code(d.diagnose_id)}")
    return {
        "text": f"Flink diagnosis of {label}: {phrase}, {health}, {_plural(count, 'symptom')}",
        "header": f"{risk.emoji} {phrase} · {label}",
        "risk": {"label": escape_mrkdwn(risk.label), "emoji": risk.emoji, "colour": risk.colour},
        "facts": _facts(run, count),
        "categories": categories,
        "symptom_count": count,
        "no_symptoms": ":white_check_mark: No symptoms found.",
        "change": _change_text(change) if change is not None else None,
        "actions": _diagnosis_actions(t, run_id, ephemeral, follow),
        "shared_by": f"Shared by {user_mention(shared_by)}" if shared_by else None,
        "summary": " · ".join(summary_bits),
        "ephemeral": ephemeral,
    }


# --- usage ----------------------------------------------------------------------------------

_USAGE: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Diagnose",
        [
            ("job <job-id> [--namespace N] [--workspace W] [--share]", "diagnose one job"),
            (
                "deployment <name-or-id> [--namespace N] [--workspace W] [--share]",
                "diagnose a deployment's running job",
            ),
        ],
    ),
    (
        "Watch",
        [
            (
                "watch deployment <name-or-id> [--min-risk mid|high] [--every 5m]",
                "post here when the risk reaches the threshold",
            ),
            (
                "watch namespace <ns> [--min-risk mid|high] [--every 5m]",
                "watch every deployment in a namespace",
            ),
            ("unwatch deployment <name-or-id>", "stop watching a deployment"),
            ("unwatch namespace <ns>", "stop watching a namespace"),
            ("watches", "list this channel's watches"),
        ],
    ),
    (
        "Report",
        [
            ("report daily HH:MM [tz]", "a digest of the watched jobs every day"),
            ("report weekdays HH:MM [tz]", "the same, Monday to Friday"),
            ("report off", "stop the digest"),
            ("report now", "post the digest now"),
        ],
    ),
    (
        "Settings",
        [
            ("defaults [namespace=N] [workspace=W]", "show or set this channel's defaults"),
            ("help", "this message"),
        ],
    ),
]


def _usage_context(mistake: str | None, command: str) -> dict[str, Any]:
    cmd = escape_mrkdwn(command)
    groups = []
    for title, entries in _USAGE:
        lines = [f"`{cmd} {escape_mrkdwn(syntax)}` — {escape_mrkdwn(about)}" for syntax, about in entries]
        groups.append({"text": f"*{title}*\n" + "\n".join(lines), "block_id": f"usage.{title.lower()}"})
    text = f"Usage of {cmd}: job, deployment, watch, unwatch, watches, report, defaults, help"
    if mistake:
        text = f"{escape_mrkdwn(mistake)}. {text}"
    return {
        "text": text,
        "mistake": f":warning: {escape_mrkdwn(mistake)}" if mistake else None,
        "title": f"*How to use `{cmd}`*",
        "groups": groups,
        "footnote": "Namespace and workspace fall back to this channel's defaults, then to the bot's "
        "settings. `--share` posts the result to the channel instead of only to you.",
    }


# --- defaults -------------------------------------------------------------------------------


def _setting_value(value: object) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "_not set_"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(code(v) for v in value)
    return code(value)


def _setting_label(key: str) -> str:
    return escape_mrkdwn(key.replace("_", " ").capitalize())


# --- watches, alerts and reports ------------------------------------------------------------

# An alert shows what to do first; the full list is one Re-run away.
_ALERT_SYMPTOMS = 3
_ALERT_NAME_MAX = 120
_ALERT_DESCRIPTION_MAX = 300
_ALERT_RECOMMENDATION_MAX = 600
_LINE_NAME_MAX = 80
_LINE_SYMPTOM_MAX = 100
_LINE_MAX = 500
_MORE_MAX = 290
# Rows are packed several to a section; one section stays under Slack's 3000.
_SECTION_TEXT = 2800
# A greedy pack of lines of at most _LINE_MAX fills each closed section past this much.
_SECTION_FILL = _SECTION_TEXT - _LINE_MAX - 100
_MIN_WATCH_TEXT = 1200
_RESOLVED = (":white_check_mark:", LOW.colour)

# The report's statuses (bot.watch.report.ReportRow.status) and a watched target's, as shown.
_STATUS_SHOWN: dict[str, tuple[str, str]] = {
    "no_job": (":black_circle:", "no running job"),
    "cannot_check": (":warning:", "cannot check"),
    "not_checked": (":hourglass:", "not checked yet"),
    "paused": (":double_vertical_bar:", "paused"),
}
_LEVEL_ORDER = ("high", "mid", "low")


def target_value(target_id: int) -> str:
    """The value of the Snooze and Unwatch buttons: the watched target's id, compact JSON."""
    return _compact_json({"t": target_id})


def parse_target_value(value: str) -> int:
    """Inverse of `target_value`. Raises ValueError on anything else."""
    try:
        t = json.loads(value)["t"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError("not a flinkdiag target button value") from e
    if isinstance(t, bool) or not isinstance(t, int):
        raise ValueError("not a flinkdiag target button value")
    return t


def interval_text(seconds: int) -> str:
    """How often a watch checks, spelled as `--every` takes it: `every 5m`, `every 90m`. Plain text."""
    return "every " + format_duration(timedelta(seconds=max(0, int(seconds))))


def threshold_text(min_risk: str | None) -> str:
    """A watch's threshold as a phrase: `alerts at Mid and above`. Plain text (not escaped)."""
    return f"alerts at {Risk.parse(min_risk).label} and above"


def _health(score: int | None) -> str:
    band = health_band(score)
    if score is None:
        return f"{band.emoji} not reported"
    return f"{band.emoji} {score}/100 ({band.label})"


def _health_plain(score: int | None) -> str:
    return f"health {score}/100" if score is not None else "health not reported"


def _all_symptoms(run: DiagnosisRun) -> list[Symptom]:
    return [s for items in run.diagnosis.symptoms.by_category().values() for s in items]


def _deployment_field(t: WatchTarget) -> str:
    ident = code(t.deployment_id, _LINE_NAME_MAX)
    if t.deployment_name:
        return f"{one_line(t.deployment_name, _ALERT_NAME_MAX)} {ident}"
    return ident


def _snoozed_until(state: TargetState, now: datetime) -> datetime | None:
    """When the snooze ends, if it has not ended by `now` (the store may hand back naive UTC)."""
    until = state.snoozed_until
    return until if until is not None and _aware(until) > _aware(now) else None


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


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
    url = _safe_url(target.console_url()) if target is not None else None
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
    elif reason is Reason.CANNOT_CHECK:
        error = one_line(notice.error or "", 400).rstrip(". ") or "the Flink API did not answer"
        tail = "I'll keep trying and tell you when it works again."
        sentence = f":warning: Can't check {name}: {error} — {tail}"
        text = f"Can't check {plain}: {error} — {tail}"
    elif reason is Reason.CHECKING_AGAIN:
        sentence = f":white_check_mark: Checking {name} again: the Flink API answers again."
        text = f"Checking {plain} again: the Flink API answers again."
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
    if reason is Reason.CANNOT_CHECK:
        bits.append(_plural(s.failure_streak, "failed check") + " in a row")
        if s.last_success_at is not None:
            bits.append(f"last good check {slack_date(s.last_success_at)}")
    bits.append(slack_date(when))
    return {"text": text, "sentence": sentence, "detail": detail, "where": " · ".join(bits)}


def _list_budget(*fixed: str | None) -> int:
    """What a long list may take of the message's total text (`blocks.MAX_TOTAL_TEXT`) once the
    `fixed` texts and a closing "…and N more" line are placed.

    Lists stop here, on a line, with counts by level that the limit pass could not give; its
    summary line stays a safety net for operator templates.
    """
    return bk.MAX_TOTAL_TEXT - sum(bk.slack_len(x) for x in fixed if x) - _MORE_MAX


def _items_that_fit(head: list[str], items: list[str], budget: int) -> int:
    """How many `items` fit after `head` in `budget` characters, leaving room for a "…and N more"
    line when not all of them do."""
    used = sum(bk.slack_len(x) + 1 for x in head)
    widths = [bk.slack_len(x) + 1 for x in items]
    if used + sum(widths) <= budget:
        return len(items)
    for i, w in enumerate(widths):
        if used + w + _MORE_MAX + 1 > budget:
            return i
        used += w
    return len(items)


def _pack(lines: list[str]) -> list[str]:
    """Lines joined into section texts of at most _SECTION_TEXT characters each."""
    sections: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        w = bk.slack_len(line) + 1
        if current and size + w > _SECTION_TEXT:
            sections.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += w
    if current:
        sections.append("\n".join(current))
    return sections


def _counted(keys: Sequence[str]) -> str:
    """`3 high, 5 mid, 2 no running job`: known levels first, the rest in order of appearance."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    order = [k for k in _LEVEL_ORDER if k in counts] + [k for k in counts if k not in _LEVEL_ORDER]
    return ", ".join(f"{counts[k]} {k}" for k in order)


def _target_kind(s: TargetState) -> str:
    if s.last_checked_at is None:
        return "not_checked"
    if s.failure_streak >= 1:
        return "cannot_check"
    if s.last_kind == "no_job":
        return "no_job"
    return "ok"


def _target_key(t: WatchTarget) -> str:
    kind = _target_kind(t.state)
    if kind == "ok":
        return one_line(Risk.parse(t.state.last_observed_risk).label.lower(), 40)
    return _STATUS_SHOWN[kind][1]


_KIND_ORDER = {"ok": 0, "cannot_check": 1, "no_job": 2, "not_checked": 3}


def _target_sort_key(t: WatchTarget) -> tuple[bool, int, int, int, str]:
    # Worst first, like the report: highest level, then lowest health; muted ones last.
    s = t.state
    kind = _target_kind(s)
    rank = Risk.parse(s.last_observed_risk).rank if kind == "ok" else 0
    health = s.last_health_score if s.last_health_score is not None else 101
    return (t.muted, -rank, _KIND_ORDER[kind], health, t.label)


def _target_line(t: WatchTarget, now: datetime) -> str:
    s = t.state
    kind = _target_kind(s)
    name = bold(t.label, _LINE_NAME_MAX) or code(t.deployment_id, _LINE_NAME_MAX)
    parts: list[str] = []
    if kind == "ok":
        risk = Risk.parse(s.last_observed_risk)
        emoji = risk.emoji
        parts += [one_line(risk.label, 40), _health_plain(s.last_health_score)]
    else:
        emoji, shown = _STATUS_SHOWN[kind]
        if kind == "cannot_check":
            shown = f"cannot check ({_plural(s.failure_streak, 'failure')})"
        parts.append(shown)
        if kind == "cannot_check" and s.last_observed_risk is not None:
            parts.append(f"last seen {one_line(Risk.parse(s.last_observed_risk).label, 40)}")
    if s.last_checked_at is not None:
        parts.append(f"checked {slack_date(s.last_checked_at)}")
    until = _snoozed_until(s, now)
    if until is not None:
        parts.append(f":zzz: snoozed until {slack_date(until)}")
    if t.muted:
        parts.append(":no_bell: muted")
    return cut(f"{emoji} {name} — " + " · ".join(parts), _LINE_MAX)


def _paused_line(reason: str) -> str:
    fix = "run `/flinkdiag watches` to resume"
    if reason == "not_in_channel":
        fix = "invite me (`/invite @flinkdiag`) and " + fix
    elif reason == "is_archived":
        fix = "unarchive the channel and " + fix
    return f":double_vertical_bar: paused: {code(reason, 60)} — {fix}"


def _watch_title(w: Watch, count: int) -> str:
    how = f"{escape_mrkdwn(threshold_text(w.min_risk))} · {interval_text(w.interval_seconds)}"
    if w.kind == "namespace":
        what = f"*Namespace* {code(w.namespace, _LINE_NAME_MAX)} · workspace {code(w.workspace, 60)}"
        return f":eyes: {what} · {_plural(count, 'deployment')} · {how}"
    label = w.deployment_name or w.deployment_id or "?"
    what = f"*Deployment* {bold(label, _LINE_NAME_MAX)} · namespace {code(w.namespace, 60)}"
    return f":eyes: {what} · {how}"


def _watches_context(
    watches: Sequence[Watch], targets: Mapping[int, Sequence[WatchTarget]], now: datetime
) -> dict[str, Any]:
    base: dict[str, Any] = {"header": ":eyes: Watches in this channel", "summary": None, "sections": []}
    base |= {"more": None, "empty": None, "hint": None}
    if not watches:
        empty = "This channel watches nothing yet. Try `/flinkdiag watch deployment <name>`."
        return base | {"text": escape_mrkdwn(empty), "empty": escape_mrkdwn(empty)}
    every = [t for w in watches for t in targets.get(w.id, [])]
    counted = _counted([_target_key(t) for t in sorted(every, key=_target_sort_key)])
    paused = sum(1 for w in watches if w.paused_reason)
    summary = f"*{_plural(len(watches), 'watch', 'watches')}* · {_plural(len(every), 'deployment')}"
    if counted:
        summary += f": {counted}"
    if paused:
        summary += f" · :double_vertical_bar: {paused} paused"
    hint = "Stop one with `/flinkdiag unwatch deployment NAME` or `/flinkdiag unwatch namespace NS`."
    budget = _list_budget(base["header"], summary, hint)
    sections: list[dict[str, Any]] = []
    used = 0
    # header, summary, the "more watches" line and the hint take the other blocks.
    max_sections = bk.MAX_BLOCKS - 4
    shown = 0
    for i, w in enumerate(watches):
        left = min(budget - used, (max_sections - len(sections)) * _SECTION_FILL)
        if left < _MIN_WATCH_TEXT:
            break
        share = min(left, max(_MIN_WATCH_TEXT, budget // len(watches)))
        ts = sorted(targets.get(w.id, []), key=_target_sort_key)
        head = [_watch_title(w, len(ts))]
        if w.paused_reason:
            head.append(_paused_line(w.paused_reason))
        if not ts and w.kind == "namespace":
            head.append("_no deployments found yet_")
        elif not ts:
            head.append("_not checked yet_")

        items = [_target_line(t, now) for t in ts]
        fit = _items_that_fit(head, items, share)
        lines = head + items[:fit]
        if fit < len(ts):
            rest = _counted([_target_key(t) for t in ts[fit:]])
            lines.append(cut(f"…and {_plural(len(ts) - fit, 'more deployment')}: {rest}", _MORE_MAX))
        for j, text in enumerate(_pack(lines)):
            sections.append({"block_id": f"watch.{i}" if j == 0 else f"watch.{i}.{j}", "text": text})
            used += bk.slack_len(text)
        shown += 1
    left_out = watches[shown:]
    more_watches = None
    if left_out:
        n = sum(len(targets.get(w.id, [])) for w in left_out)
        more_watches = f"…and {_plural(len(left_out), 'more watch', 'more watches')}"
        more_watches += f" ({_plural(n, 'deployment')})"
    text = f"This channel has {_plural(len(watches), 'watch', 'watches')}"
    text += f", {_plural(len(every), 'deployment')}"
    if counted:
        text += f" ({counted})"
    if paused:
        text += f", {paused} paused"
    return base | {
        "text": text,
        "summary": summary,
        "sections": sections,
        "more": more_watches,
        "hint": hint,
    }


def _row_line(r: ReportRow) -> str:
    name = bold(r.label, _LINE_NAME_MAX) or code(r.deployment_id, _LINE_NAME_MAX)
    parts = [code(r.namespace, 60)]
    if r.status == "ok":
        risk = Risk.parse(r.risk)
        emoji = risk.emoji
        health = _health_plain(r.health_score)
        delta = r.health_delta
        if delta:
            health += f" ({delta:+d})"
        parts += [one_line(risk.label, 40), health]
    else:
        emoji, shown = _STATUS_SHOWN.get(r.status, (":grey_question:", one_line(r.status, 40)))
        parts.append(shown)
    if r.new_since_last:
        parts.append(":new: new")
    elif r.change in ("up", "down"):
        arrow = "↑" if r.change == "up" else "↓"
        parts.append(f"{arrow} from {one_line(Risk.parse(r.previous_risk).label, 40)}")
    if r.top_symptom:
        parts.append(one_line(r.top_symptom, _LINE_SYMPTOM_MAX))
    return cut(f"{emoji} {name} · " + " · ".join(parts), _LINE_MAX)


def _report_changes(report: FleetReport) -> str | None:
    ups = sum(1 for r in report.rows if r.change == "up")
    downs = sum(1 for r in report.rows if r.change == "down")
    new = sum(1 for r in report.rows if r.new_since_last)
    same = sum(1 for r in report.rows if r.change == "same")
    if not (ups or downs or new or same):
        return None
    bits = [(ups, ":arrow_up: {} up"), (downs, ":arrow_down: {} down"), (new, ":new: {} new")]
    shown = [fmt.format(k) for k, fmt in bits if k] + ([f"{same} unchanged"] if same else [])
    return "Since the last report: " + " · ".join(shown)


def _report_context(report: FleetReport, title: str) -> dict[str, Any]:
    name = one_line(title, 100) or "Fleet report"
    base: dict[str, Any] = {"header": f":bar_chart: {name}", "sections": [], "more": None, "changes": None}
    if not report.rows:
        empty = "No watched deployments in this channel."
        return base | {"text": f"{name}: {empty}", "summary": None, "empty": empty}
    summary_line = escape_mrkdwn(report.summary())
    n = len(report.rows)
    rows = report.rows
    summary = f"*{summary_line}* · {_plural(n, 'deployment')} · {slack_date(report.generated_at)}"
    changes = _report_changes(report)

    budget = min(_list_budget(base["header"], summary, changes), (bk.MAX_BLOCKS - 6) * _SECTION_FILL)
    lines = [_row_line(r) for r in rows]
    fit = _items_that_fit([], lines, budget)
    sections = [{"block_id": f"rows.{i}", "text": t} for i, t in enumerate(_pack(lines[:fit]))]
    more = None
    if fit < n:
        rest = FleetReport(channel_id=report.channel_id, generated_at=report.generated_at, rows=rows[fit:])
        counts = rest.counts()
        lead = f"…and {_plural(n - fit, 'more deployment')}"
        if len(counts) == 1:
            more = f"{lead} (all {escape_mrkdwn(next(iter(counts)))})"
        else:
            more = f"{lead}: {escape_mrkdwn(rest.summary())}"
    worst = rows[0]
    text = f"{name}: {summary_line} ({_plural(n, 'deployment')})"
    if worst.status == "ok" and Risk.parse(worst.risk) > LOW:
        level = one_line(Risk.parse(worst.risk).label, 40)
        text += f"; worst: {one_line(worst.label, _LINE_NAME_MAX)} ({level})"
    return base | {
        "text": text,
        "summary": summary,
        "empty": None,
        "sections": sections,
        "more": cut(more, _MORE_MAX) if more else None,
        "changes": changes,
    }


# --- the renderer ---------------------------------------------------------------------------


def _environment(loader: Any) -> ImmutableSandboxedEnvironment:
    # Sandboxed: templates only need loops and ifs, and an operator's folder should not be able
    # to reach Python internals through the values we pass in.
    return ImmutableSandboxedEnvironment(
        loader=loader, autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


class Renderer:
    """Renders messages from `<kind>.json.j2` templates: the operator's folder first, then ours."""

    def __init__(self, template_dir: str | None = None) -> None:
        packaged = FileSystemLoader(str(PACKAGED_TEMPLATES))
        self._fallback: ImmutableSandboxedEnvironment | None = None
        if template_dir:
            self._env = _environment(ChoiceLoader([FileSystemLoader(template_dir), packaged]))
            self._fallback = _environment(packaged)
        else:
            self._env = _environment(packaged)

    def _build(self, env: ImmutableSandboxedEnvironment, kind: str, ctx: Mapping[str, Any]) -> Message:
        raw = env.get_template(f"{kind}.json.j2").render(**ctx)
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            raise TemplateProblem(f"{kind}.json.j2 is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), list):
            raise TemplateProblem(f"{kind}.json.j2 must render an object with a `blocks` list")
        attachments = doc.get("attachments")
        try:
            message = Message(
                text=str(doc.get("text") or "").strip() or "flinkdiag",
                blocks=[b for b in doc["blocks"] if isinstance(b, dict)],
                attachments=[a for a in attachments if isinstance(a, dict)]
                if isinstance(attachments, list)
                else None,
            )
        except ValidationError as e:
            raise TemplateProblem(f"{kind}.json.j2: {e}") from None
        message = bk.enforce_limits(message)
        found = bk.problems(message)
        if found:
            raise TemplateProblem(f"{kind}.json.j2: " + "; ".join(found[:3]))
        return message

    def render(self, kind: str, ctx: Mapping[str, Any]) -> Message:
        """Render template `kind` with prepared (escaped) values; falls back to the packaged one."""
        try:
            return self._build(self._env, kind, ctx)
        except Exception as e:
            # An operator's template can fail in any way (a TypeError from `tojson` on an
            # undefined value, say); with no operator folder, failures are our bugs and surface.
            if self._fallback is None:
                raise
            log.warning("template_fallback kind=%s error=%s detail=%s", kind, type(e).__name__, str(e)[:200])
            return self._build(self._fallback, kind, ctx)

    def render_diagnosis(
        self,
        run: DiagnosisRun,
        *,
        change: Change | None = None,
        run_id: str | None = None,
        shared_by: str | None = None,
        ephemeral: bool = True,
        follow: bool = False,
    ) -> Message:
        """A diagnosis: risk, health, where the job lives, symptoms by category, what changed, buttons.

        `follow`: Re-run diagnoses the deployment's current job, not this job (after a restart)."""
        return self.render("diagnosis", _diagnosis_context(run, change, run_id, shared_by, ephemeral, follow))

    def render_progress(self, what: str) -> Message:
        """The "Diagnosing …" note shown while the API is asked."""
        text = f":hourglass_flowing_sand: Diagnosing {escape_mrkdwn(what)}…"
        return self.render("progress", {"text": f"Diagnosing {escape_mrkdwn(what)}…", "note": text})

    def render_error(self, sentence: str, *, ref: str | None = None, hint: str | None = None) -> Message:
        """An error note: one sentence, an optional hint and an optional reference for the logs."""
        s = escape_mrkdwn(sentence).strip() or "Something went wrong."
        return self.render(
            "error",
            {
                "text": s,
                "sentence": f":warning: {s}",
                "hint": f":bulb: {escape_mrkdwn(hint)}" if hint else None,
                "ref": f"ref {code(ref)}" if ref else None,
            },
        )

    def render_usage(self, mistake: str | None = None, *, command: str = "/flinkdiag") -> Message:
        """How to use the slash command, naming the user's mistake first when there is one."""
        return self.render("usage", _usage_context(mistake, command))

    def render_defaults(
        self, channel_defaults: Mapping[str, str | None], configured: Mapping[str, object]
    ) -> Message:
        """This channel's defaults and the bot's configured fallbacks."""
        channel = [f"*{_setting_label(k)}*\n{_setting_value(v)}" for k, v in channel_defaults.items()]
        fallback = [f"*{_setting_label(k)}*\n{_setting_value(v)}" for k, v in configured.items()]
        shown = ", ".join(f"{k}={v}" for k, v in channel_defaults.items() if v) or "none set"
        return self.render(
            "defaults",
            {
                "text": f"Channel defaults: {escape_mrkdwn(shown)}",
                "channel_title": "*Defaults for this channel*",
                "channel": channel,
                "configured_title": "*Configured fallbacks*",
                "configured": fallback,
                "hint": "Set them with `/flinkdiag defaults namespace=N workspace=W`.",
            },
        )

    def render_job_choice(self, what: str, candidates: Sequence[Target], *, share: bool = False) -> Message:
        """Several matches: `what` (one sentence saying what matched, e.g. `Ambiguous.user_message`),
        then one line and one Diagnose button (`diagnose_choice`, value = the target) per candidate."""
        items = []
        for i, t in enumerate(candidates):
            name = bold(t.deployment_name, _NAME_MAX) if t.deployment_name else code(t.deployment_id)
            value = action_value(t, share=share)
            items.append(
                {
                    "block_id": f"choice.{i}",
                    "text": f"{name} in namespace {code(t.namespace)} · workspace {code(t.workspace)}\n"
                    f"job {code(t.job_id)}",
                    "button": _button("diagnose_choice", "Diagnose", value=value) if value else None,
                }
            )
        w = escape_mrkdwn(what).strip() or f"{_plural(len(items), 'match', 'matches')}; pick one."
        return self.render(
            "job_choice", {"text": w, "intro": f":twisted_rightwards_arrows: {w}", "items": items}
        )

    def render_text(self, text: str) -> Message:
        """A simple note; the text is escaped."""
        t = escape_mrkdwn(text).strip() or "—"
        return self.render("text", {"text": t, "body": t})

    def render_alert(self, notice: Notice, *, now: datetime) -> Message:
        """The anchor of an alert episode: the confirmed level, where the job lives, what to do,
        buttons (Re-run, Snooze 1h / 24h, Unwatch). Re-rendered to edit the anchor; shows
        "Back to normal" once the episode closed."""
        return self.render("alert", _alert_context(notice, now))

    def render_alert_digest(self, notices: Sequence[Notice], *, now: datetime) -> Message:
        """One message for the alerts of a storm: when more deployments rise in one channel at
        once than is readable, the rest share this message; their follow-ups go in its thread."""
        return self.render("alert_digest", _digest_context(notices, now))

    def render_alert_followup(
        self, notice: Notice, *, now: datetime, previous_risk: str | None = None
    ) -> Message:
        """A reply in an alert's thread (or a note): a further rise, back to normal, can't check,
        checking again, no running job. `previous_risk` names the level before a further rise;
        without it the level is inferred from the watch's threshold where only one fits."""
        return self.render("alert_followup", _followup_context(notice, now, previous_risk))

    def render_watches(
        self, watches: Sequence[Watch], targets: Mapping[int, Sequence[WatchTarget]], *, now: datetime
    ) -> Message:
        """This channel's watches, each with its deployments worst first (`targets` by watch id);
        long lists end with "…and N more deployments: 2 mid, 480 low"."""
        return self.render("watches", _watches_context(watches, targets, now))

    def render_report(self, report: FleetReport, *, title: str = "Fleet report") -> Message:
        """A fleet report: the summary line, then rows worst first, packed several to a section;
        what does not fit is counted by level in a last "…and N more deployments" line."""
        return self.render("report", _report_context(report, title))


@lru_cache(maxsize=1)
def _default() -> Renderer:
    return Renderer()


def render_diagnosis(
    run: DiagnosisRun,
    *,
    change: Change | None = None,
    run_id: str | None = None,
    shared_by: str | None = None,
    ephemeral: bool = True,
    follow: bool = False,
) -> Message:
    """`Renderer().render_diagnosis` with the packaged templates."""
    return _default().render_diagnosis(
        run, change=change, run_id=run_id, shared_by=shared_by, ephemeral=ephemeral, follow=follow
    )


def render_progress(what: str) -> Message:
    """`Renderer().render_progress` with the packaged templates."""
    return _default().render_progress(what)


def render_error(sentence: str, *, ref: str | None = None, hint: str | None = None) -> Message:
    """`Renderer().render_error` with the packaged templates."""
    return _default().render_error(sentence, ref=ref, hint=hint)


def render_usage(mistake: str | None = None, *, command: str = "/flinkdiag") -> Message:
    """`Renderer().render_usage` with the packaged templates."""
    return _default().render_usage(mistake, command=command)


def render_defaults(channel_defaults: Mapping[str, str | None], configured: Mapping[str, object]) -> Message:
    """`Renderer().render_defaults` with the packaged templates."""
    return _default().render_defaults(channel_defaults, configured)


def render_job_choice(what: str, candidates: Sequence[Target], *, share: bool = False) -> Message:
    """`Renderer().render_job_choice` with the packaged templates."""
    return _default().render_job_choice(what, candidates, share=share)


def render_text(text: str) -> Message:
    """`Renderer().render_text` with the packaged templates."""
    return _default().render_text(text)


def render_alert_digest(notices: Sequence[Notice], *, now: datetime) -> Message:
    """`Renderer().render_alert_digest` with the packaged templates."""
    return _default().render_alert_digest(notices, now=now)


def render_alert(notice: Notice, *, now: datetime) -> Message:
    """`Renderer().render_alert` with the packaged templates."""
    return _default().render_alert(notice, now=now)


def render_alert_followup(notice: Notice, *, now: datetime, previous_risk: str | None = None) -> Message:
    """`Renderer().render_alert_followup` with the packaged templates."""
    return _default().render_alert_followup(notice, now=now, previous_risk=previous_risk)


def render_watches(
    watches: Sequence[Watch], targets: Mapping[int, Sequence[WatchTarget]], *, now: datetime
) -> Message:
    """`Renderer().render_watches` with the packaged templates."""
    return _default().render_watches(watches, targets, now=now)


def render_report(report: FleetReport, *, title: str = "Fleet report") -> Message:
    """`Renderer().render_report` with the packaged templates."""
    return _default().render_report(report, title=title)


# --- Block Kit as text (for the local console) ---------------------------------------------

_TOKEN = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def _token_text(m: re.Match[str]) -> str:
    target, label = m.group(1), m.group(2)
    if target.startswith("!date^"):
        return label or target
    if target.startswith(("@", "#")):
        return f"{target[0]}{label}" if label else target
    if target.startswith("!"):
        return "@" + target[1:].split("^", 1)[0]
    return f"{label} ({target})" if label else target


def mrkdwn_to_text(text: str) -> str:
    """Slack markup as a console would show it: links and dates resolved, entities decoded."""
    return bk.unescape_mrkdwn(_TOKEN.sub(_token_text, text))


def _obj_text(obj: Any) -> str:
    if isinstance(obj, dict):
        return mrkdwn_to_text(str(obj.get("text", "")))
    if isinstance(obj, str):
        return mrkdwn_to_text(obj)
    return ""


def _as_parts(message: Message | Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    if isinstance(message, Message):
        return list(message.blocks), list(message.attachments or [])
    return list(message.get("blocks") or []), list(message.get("attachments") or [])


def _to_text(message: Message | Mapping[str, Any], with_buttons: bool) -> tuple[str, list[dict[str, Any]]]:
    blocks, attachments = _as_parts(message)
    for a in attachments:
        if isinstance(a, dict):
            blocks.extend(a.get("blocks") or [])
    lines: list[str] = []
    buttons: list[dict[str, Any]] = []

    def button(el: dict[str, Any], block_id: str | None) -> str | None:
        b = {
            "action_id": el.get("action_id"),
            "value": el.get("value"),
            "text": _obj_text(el.get("text")),
            "url": el.get("url"),
            "block_id": block_id,
        }
        buttons.append(b)
        if not with_buttons:
            return None
        return f"[{len(buttons)}] {b['text']}" + (f" ({b['url']})" if b["url"] else "")

    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind, bid = block.get("type"), block.get("block_id")
        if kind == "header":
            lines.append(f"== {_obj_text(block.get('text'))} ==")
        elif kind == "section":
            if block.get("text"):
                lines.append(_obj_text(block["text"]))
            for f in block.get("fields") or []:
                lines.append("  " + ": ".join(p for p in _obj_text(f).split("\n") if p))
            acc = block.get("accessory")
            if isinstance(acc, dict) and acc.get("type") == "button":
                shown = button(acc, bid)
                if shown:
                    lines.append("  " + shown)
        elif kind == "context":
            els = [e for e in block.get("elements") or [] if isinstance(e, dict)]
            lines.append("  " + " · ".join(_obj_text(e) for e in els))
        elif kind == "divider":
            lines.append("---")
        elif kind == "actions":
            shown_all = [button(e, bid) for e in block.get("elements") or [] if e.get("type") == "button"]
            if with_buttons:
                lines.append("  ".join(x for x in shown_all if x))
        else:
            lines.append(f"[{kind} block]")
    if not lines:
        text = message.text if isinstance(message, Message) else str(message.get("text") or "")
        lines.append(mrkdwn_to_text(text))
    return "\n".join(lines), buttons


def blocks_to_text(message: Message | Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The message as plain lines with its buttons numbered `[1]`, `[2]`, … in order, and the buttons.

    Each button is `dict(action_id, value, text, url, block_id)`.
    """
    return _to_text(message, with_buttons=True)


def message_to_text(message: Message | Mapping[str, Any]) -> str:
    """The message as plain lines without its buttons (for a console that numbers them itself)."""
    return _to_text(message, with_buttons=False)[0]
