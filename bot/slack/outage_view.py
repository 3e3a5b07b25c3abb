"""Template contexts for a watch's outage: the can't-check note (edited as its list changes),
the same note once the outage is over, and the checking-again reply. Values come out escaped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.slack.blocks import bold, code, cut, one_line
from bot.slack.format import _LINE_NAME_MAX, _plural, slack_date
from bot.slack.watch_view import _items_that_fit, _list_budget, _pack
from bot.watch.model import OutageNotice, Watch, WatchTarget

_ERROR_MAX = 400
_LINE_MAX = 400
_MORE_MAX = 200
_HEADER_MAX = 150


def _what(w: Watch) -> str:
    if w.kind == "namespace":
        return f"namespace {code(w.namespace, 80)}"
    return f"deployment {bold(w.deployment_name or w.deployment_id or '?', _LINE_NAME_MAX)}"


def _what_plain(w: Watch) -> str:
    if w.kind == "namespace":
        return f"namespace {one_line(w.namespace, 80)}"
    return f"deployment {one_line(w.deployment_name or w.deployment_id or '?', _LINE_NAME_MAX)}"


def _target_line(t: WatchTarget, recovery_checks: int) -> str:
    s = t.state
    name = bold(t.label, _LINE_NAME_MAX) or code(t.deployment_id, _LINE_NAME_MAX)
    if s.failure_streak >= 1:
        bits = [_plural(s.failure_streak, "failed check") + " in a row"]
        if s.last_error_kind:
            bits.append(code(s.last_error_kind, 60))
    else:
        good = s.checks_since_failure or 0
        bits = [f"working again ({good} of {recovery_checks} good checks)"]
    if s.last_success_at is not None:
        bits.append(f"last good check {slack_date(s.last_success_at)}")
    return cut(f"• {name} — " + " · ".join(bits), _LINE_MAX)


def _footer(w: Watch, now: datetime) -> str:
    return f"Watch of {_what(w)} · workspace {code(w.workspace, 60)} · as of {slack_date(now)}"


def outage_context(notice: OutageNotice, now: datetime) -> dict[str, Any]:
    """The can't-check note: one per watch per outage, listing what cannot be checked."""
    w, state = notice.watch, notice.state
    since = state.since or now
    error = one_line(notice.error or "", _ERROR_MAX).rstrip(". ") or "The Flink API did not answer"
    n = len(notice.listed)
    subject = f"{_plural(n, 'deployment')} in {_what_plain(w)}" if w.kind == "namespace" else _what_plain(w)
    header = f":warning: Can't check {subject}"
    intro = (
        f"{error}, since {slack_date(since)}. I'll keep trying. This message lists what I can't check "
        f"and changes with it; its thread says when checks work again "
        f"({_plural(notice.recovery_checks, 'good check')} in a row)."
    )
    footer = _footer(w, now)
    items = [_target_line(t, notice.recovery_checks) for t in notice.listed]
    budget = _list_budget(header, intro, footer)
    fit = _items_that_fit([], items, budget)
    lines = items[:fit]
    if fit < len(items):
        lines.append(cut(f"…and {_plural(len(items) - fit, 'more deployment')}", _MORE_MAX))
    rows = [{"block_id": f"outage.{i}", "text": t} for i, t in enumerate(_pack(lines))]
    return {
        "text": cut(f"Can't check {subject}: {error}", 2900),
        "header": cut(header, _HEADER_MAX),
        "intro": intro,
        "rows": rows,
        "footer": footer,
    }


def outage_over_context(notice: OutageNotice, now: datetime) -> dict[str, Any]:
    """The note once its outage is over (edited in place, so nobody reads it as current)."""
    w, prev = notice.watch, notice.previous
    since = prev.since or now
    header = f":white_check_mark: Checks work again: {_what_plain(w)}"
    intro = f"I couldn't check from {slack_date(since)} to {slack_date(now)}; the thread has the details."
    return {
        "text": cut(f"Checks work again: {_what_plain(w)}", 2900),
        "header": cut(header, _HEADER_MAX),
        "intro": intro,
        "rows": [],
        "footer": _footer(w, now),
    }


def checking_again_context(notice: OutageNotice, now: datetime) -> dict[str, Any]:
    """The one checking-again note of an outage, in the note's thread."""
    w, prev = notice.watch, notice.previous
    since = prev.since or now
    good = _plural(notice.recovery_checks, "good check")
    sentence = (
        f":white_check_mark: Checking {_what(w)} again: every deployment had {good} in a row. "
        f"I couldn't check from {slack_date(since)} to {slack_date(now)}."
    )
    return {
        "text": cut(f"Checking {_what_plain(w)} again: the Flink API answers again.", 2900),
        "header": None,
        "intro": sentence,
        "rows": [],
        "footer": _footer(w, now),
    }
