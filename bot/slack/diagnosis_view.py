"""Template contexts for the slash command's answers: a diagnosis, the progress note, an error,
usage, the channel's defaults, a choice between jobs and a plain note. Values come out escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.diagnosis.report import Change, DiagnosisRun, SymptomKey, Target
from bot.diagnosis.risk import Risk, health_band
from bot.slack.blocks import bold, code, cut, escape_mrkdwn, one_line
from bot.slack.buttons import action_value
from bot.slack.format import (
    _NAME_MAX,
    _button,
    _plural,
    _risk_phrase,
    console_link,
    slack_date,
    user_mention,
)

CATEGORY_TITLES: dict[str, str] = {
    "startup": ":rocket: Startup",
    "runtime": ":gear: Runtime",
    "troubleshooting": ":mag: Troubleshooting",
    "state": ":floppy_disk: State",
    "autopilot": ":robot_face: Autopilot",
    "others": ":jigsaw: Other",
}

# Per-symptom caps keep one symptom readable and far inside a section's 3000 characters.
_DESCRIPTION_MAX = 1500
_RECOMMENDATION_MAX = 1000
_CHANGE_NAMES_MAX = 10


# --- diagnosis ------------------------------------------------------------------------------


def _names(keys: Sequence[SymptomKey]) -> str:
    shown = [bold(k.name, 80) or "(unnamed)" for k in keys[:_CHANGE_NAMES_MAX]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" …and {more} more" if more > 0 else "")


def _facts(run: DiagnosisRun, symptom_count: int) -> list[str]:
    t, d = run.target, run.diagnosis
    band = health_band(d.health_score)
    health = (
        f"{band.emoji} {d.health_score}/100 ({band.label})"
        if d.health_score is not None
        else f"{band.emoji} not reported"
    )
    if d.health_score is None and d.odd_health_score:
        health += f" (the API sent {code(d.odd_health_score, 60)}, not a score from 0 to 100)"
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


def _diagnosis_actions(
    target: Target, run_id: str | None, ephemeral: bool, follow: bool
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    value = action_value(target, run_id, follow=follow)
    if value is not None:
        actions.append(_button("rerun_diagnosis", ":repeat: Re-run diagnosis", value=value, style="primary"))
        if ephemeral:
            actions.append(_button("share_diagnosis", ":mega: Share to channel", value=value))
    url = console_link(target)
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


# --- progress, errors and notes ------------------------------------------------------------


def _progress_context(what: str, share: bool) -> dict[str, Any]:
    # The ack of a slash command stays above its answer (Slack posts the answer as a new message,
    # it cannot replace the ack), so it reads as a receipt, not as a spinner that never stops.
    where = "the answer will be posted to this channel" if share else "the answer follows below"
    text = f"Diagnosing {escape_mrkdwn(what)}"
    return {"text": text, "note": f":mag: {text}: {where}."}


def _error_context(sentence: str, ref: str | None, hint: str | None) -> dict[str, Any]:
    s = escape_mrkdwn(sentence).strip() or "Something went wrong."
    return {
        "text": s,
        "sentence": f":warning: {s}",
        "hint": f":bulb: {escape_mrkdwn(hint)}" if hint else None,
        "ref": f"ref {code(ref)}" if ref else None,
    }


def _text_context(text: str) -> dict[str, Any]:
    t = escape_mrkdwn(text).strip() or "—"
    return {"text": t, "body": t}


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


def _defaults_context(
    channel_defaults: Mapping[str, str | None], configured: Mapping[str, object]
) -> dict[str, Any]:
    channel = [f"*{_setting_label(k)}*\n{_setting_value(v)}" for k, v in channel_defaults.items()]
    fallback = [f"*{_setting_label(k)}*\n{_setting_value(v)}" for k, v in configured.items()]
    shown = ", ".join(f"{k}={v}" for k, v in channel_defaults.items() if v) or "none set"
    return {
        "text": f"Channel defaults: {escape_mrkdwn(shown)}",
        "channel_title": "*Defaults for this channel*",
        "channel": channel,
        "configured_title": "*Configured fallbacks*",
        "configured": fallback,
        "hint": "Set them with `/flinkdiag defaults namespace=N workspace=W`.",
    }


# --- job choice -----------------------------------------------------------------------------


def _job_choice_context(what: str, candidates: Sequence[Target], share: bool) -> dict[str, Any]:
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
    return {"text": w, "intro": f":twisted_rightwards_arrows: {w}", "items": items}
