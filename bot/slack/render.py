"""Domain objects in, Slack messages out: jinja2 templates lay out Block Kit, Python does the rest.

Every string handed to a template is already escaped, shortened and composed by the view modules
(`diagnosis_view`, `alert_view`, `watch_view`); templates only loop, branch and pass values
through `tojson`, so an operator's template can rearrange a message but cannot make it unsafe.
After rendering, `blocks.enforce_limits` makes the result fit Slack's limits. An operator template
that fails (bad JSON, a missing variable, blocks Slack would refuse) is logged and replaced by the
packaged one, so one bad file does not silence the bot.

This module is the one entry point: it also re-exports the public names of `buttons` (button
values), `format` (shared phrases) and `text` (Block Kit as text for the console).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from bot.diagnosis.report import Change, DiagnosisRun, Target
from bot.slack import blocks as bk
from bot.slack.alert_view import _alert_context, _digest_context, _followup_context
from bot.slack.blocks import Message
from bot.slack.buttons import ActionValue, action_value, parse_action_value, parse_target_value, target_value
from bot.slack.diagnosis_view import (
    CATEGORY_TITLES,
    _defaults_context,
    _diagnosis_context,
    _error_context,
    _job_choice_context,
    _progress_context,
    _text_context,
    _usage_context,
)
from bot.slack.format import (
    DEFAULT_CONSOLE_URL,
    console_fields,
    console_template,
    interval_text,
    slack_date,
    threshold_text,
    user_mention,
)
from bot.slack.text import blocks_to_text, message_to_text, mrkdwn_to_text
from bot.slack.watch_view import _report_context, _watches_context
from bot.watch.model import Notice, Watch, WatchTarget
from bot.watch.report import FleetReport

log = logging.getLogger(__name__)


def _packaged_dir() -> Path:
    # Installed from a wheel, the templates are the package folder bot/templates (setup.py maps the
    # top-level templates/ there); run from a checkout, editable or not, they are templates/ itself.
    bot_dir = Path(__file__).resolve().parents[1]
    inside = bot_dir / "templates"
    return inside if inside.is_dir() else bot_dir.parent / "templates"


PACKAGED_TEMPLATES = _packaged_dir()
# Every template a renderer asks for (and the macros they import), checked for at start-up.
TEMPLATE_KINDS = (
    "_macros",
    "alert",
    "alert_digest",
    "alert_followup",
    "defaults",
    "diagnosis",
    "error",
    "job_choice",
    "progress",
    "report",
    "text",
    "usage",
    "watches",
)

__all__ = [
    "CATEGORY_TITLES",
    "PACKAGED_TEMPLATES",
    "TEMPLATE_KINDS",
    "ActionValue",
    "Message",
    "Renderer",
    "TemplateProblem",
    "action_value",
    "blocks_to_text",
    "interval_text",
    "message_to_text",
    "mrkdwn_to_text",
    "packaged_environment",
    "parse_action_value",
    "parse_target_value",
    "render_alert",
    "render_alert_digest",
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
    "slack_date",
    "target_value",
    "threshold_text",
    "user_mention",
]


class TemplateProblem(Exception):
    """A template rendered something that is not a valid message."""


# --- the renderer ---------------------------------------------------------------------------


def _environment(loader: Any, *, auto_reload: bool = True) -> ImmutableSandboxedEnvironment:
    # Sandboxed: templates only need loops and ifs, and an operator's folder should not be able
    # to reach Python internals through the values we pass in.
    return ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=auto_reload,
    )


@lru_cache(maxsize=1)
def packaged_environment() -> ImmutableSandboxedEnvironment:
    """The packaged templates, every one loaded and compiled once per process.

    Raises TemplateProblem naming the first that is missing or does not compile: a wheel built
    without them, or a broken file, stops start-up with one line instead of failing every message.
    Their output is held to Slack's rules by the test suite (every kind, ordinary and hostile
    data), so messages from them skip the per-message check an operator's templates get.
    """
    # auto_reload off: packaged files never change while the bot runs; no stat() per message.
    env = _environment(FileSystemLoader(str(PACKAGED_TEMPLATES)), auto_reload=False)
    names = {f"{kind}.json.j2" for kind in TEMPLATE_KINDS}
    if PACKAGED_TEMPLATES.is_dir():
        names |= {p.name for p in PACKAGED_TEMPLATES.glob("*.json.j2")}
    for name in sorted(names):
        try:
            env.get_template(name)
        except TemplateNotFound:
            raise TemplateProblem(f"packaged template {name} is missing from {PACKAGED_TEMPLATES}") from None
        except TemplateError as e:
            raise TemplateProblem(f"packaged template {name} does not load: {e}") from None
    return env


class Renderer:
    """Renders messages from `<kind>.json.j2` templates: the operator's folder first, then ours."""

    def __init__(self, template_dir: str | None = None, *, console_url: str = DEFAULT_CONSOLE_URL) -> None:
        try:
            console_fields(console_url)
        except ValueError as e:
            raise TemplateProblem(str(e)) from None
        self._console_url = console_url
        packaged = packaged_environment()
        self._fallback: ImmutableSandboxedEnvironment | None = None
        if template_dir:
            loader = ChoiceLoader([FileSystemLoader(template_dir), FileSystemLoader(str(PACKAGED_TEMPLATES))])
            self._env = _environment(loader)
            self._fallback = packaged
        else:
            self._env = packaged

    def _build(
        self, env: ImmutableSandboxedEnvironment, kind: str, ctx: Mapping[str, Any], *, check: bool
    ) -> Message:
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
        message = bk.enforce_limits(message, owned=True)
        if check:
            found = bk.problems(message)
            if found:
                raise TemplateProblem(f"{kind}.json.j2: " + "; ".join(found[:3]))
        return message

    def render(self, kind: str, ctx: Mapping[str, Any]) -> Message:
        """Render template `kind` with prepared (escaped) values; falls back to the packaged one."""
        if self._fallback is None:
            # Packaged templates only: failures are our bugs and surface.
            return self._build(self._env, kind, ctx, check=False)
        try:
            return self._build(self._env, kind, ctx, check=True)
        except Exception as e:
            # An operator's template can fail in any way (a TypeError from `tojson` on an
            # undefined value, say): log it and answer with the packaged one.
            log.warning("template_fallback kind=%s error=%s detail=%s", kind, type(e).__name__, str(e)[:200])
            return self._build(self._fallback, kind, ctx, check=False)

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
        with console_template(self._console_url):
            ctx = _diagnosis_context(run, change, run_id, shared_by, ephemeral, follow)
        return self.render("diagnosis", ctx)

    def render_progress(self, what: str, *, share: bool = False) -> Message:
        """A slash command's ack while the API is asked: a receipt that still reads well once the
        answer is posted below it (`share`: the answer goes to the channel)."""
        return self.render("progress", _progress_context(what, share))

    def render_error(self, sentence: str, *, ref: str | None = None, hint: str | None = None) -> Message:
        """An error note: one sentence, an optional hint and an optional reference for the logs."""
        return self.render("error", _error_context(sentence, ref, hint))

    def render_usage(self, mistake: str | None = None, *, command: str = "/flinkdiag") -> Message:
        """How to use the slash command, naming the user's mistake first when there is one."""
        return self.render("usage", _usage_context(mistake, command))

    def render_defaults(
        self, channel_defaults: Mapping[str, str | None], configured: Mapping[str, object]
    ) -> Message:
        """This channel's defaults and the bot's configured fallbacks."""
        return self.render("defaults", _defaults_context(channel_defaults, configured))

    def render_job_choice(self, what: str, candidates: Sequence[Target], *, share: bool = False) -> Message:
        """Several matches: `what` (one sentence saying what matched, e.g. `Ambiguous.user_message`),
        then one line and one Diagnose button (`diagnose_choice`, value = the target) per candidate."""
        return self.render("job_choice", _job_choice_context(what, candidates, share))

    def render_text(self, text: str) -> Message:
        """A simple note; the text is escaped."""
        return self.render("text", _text_context(text))

    def render_alert(self, notice: Notice, *, now: datetime) -> Message:
        """The anchor of an alert episode: the confirmed level, where the job lives, what to do,
        buttons (Re-run, Snooze 1h / 24h, Unwatch). Re-rendered to edit the anchor; shows
        "Back to normal" once the episode closed."""
        with console_template(self._console_url):
            ctx = _alert_context(notice, now)
        return self.render("alert", ctx)

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


def render_progress(what: str, *, share: bool = False) -> Message:
    """`Renderer().render_progress` with the packaged templates."""
    return _default().render_progress(what, share=share)


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
