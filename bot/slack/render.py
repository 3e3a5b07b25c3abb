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
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ValidationError

from bot.diagnosis.report import Change, DiagnosisRun, SymptomKey, Target
from bot.diagnosis.risk import Risk, health_band
from bot.slack import blocks as bk
from bot.slack.blocks import Message, bold, code, cut, escape_mrkdwn, one_line

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
    "message_to_text",
    "parse_action_value",
    "render_defaults",
    "render_diagnosis",
    "render_error",
    "render_job_choice",
    "render_progress",
    "render_text",
    "render_usage",
]


class TemplateProblem(Exception):
    """A template rendered something that is not a valid message."""


# --- button values --------------------------------------------------------------------------


class ActionValue(BaseModel):
    """What a Re-run / Share / choice button carries back to the bot."""

    target: Target
    run: str | None = None
    share: bool = False


def _compact_json(data: dict[str, Any]) -> str:
    s = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Slack entity-encodes `&<>` in payloads it echoes back; \u escapes keep the value identical
    # on the way back and keep mention syntax out of the message JSON.
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def action_value(target: Target, run_id: str | None = None, *, share: bool = False) -> str | None:
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
        return ActionValue(target=target, run=d.get("run"), share=bool(d.get("share", False)))
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


def _diagnosis_actions(target: Target, run_id: str | None, ephemeral: bool) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    value = action_value(target, run_id)
    if value is not None:
        actions.append(_button("rerun_diagnosis", ":repeat: Re-run diagnosis", value=value, style="primary"))
        if ephemeral:
            actions.append(_button("share_diagnosis", ":mega: Share to channel", value=value))
    url = _safe_url(target.console_url())
    if url is not None:
        actions.append(_button("open_console", ":link: Open in console", url=url))
    return actions


def _diagnosis_context(
    run: DiagnosisRun, change: Change | None, run_id: str | None, shared_by: str | None, ephemeral: bool
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
        "actions": _diagnosis_actions(t, run_id, ephemeral),
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
    ) -> Message:
        """A diagnosis: risk, health, where the job lives, symptoms by category, what changed, buttons."""
        return self.render("diagnosis", _diagnosis_context(run, change, run_id, shared_by, ephemeral))

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
) -> Message:
    """`Renderer().render_diagnosis` with the packaged templates."""
    return _default().render_diagnosis(
        run, change=change, run_id=run_id, shared_by=shared_by, ephemeral=ephemeral
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
