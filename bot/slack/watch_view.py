"""Template contexts for the lists of watched deployments: a channel's watches and the fleet
report, each kept within Slack's total text with a closing "…and N more" line. Values come out escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.diagnosis.risk import LOW, Risk
from bot.slack import blocks as bk
from bot.slack.blocks import bold, code, cut, escape_mrkdwn, one_line
from bot.slack.format import (
    _LINE_NAME_MAX,
    _LINE_SYMPTOM_MAX,
    _health_plain,
    _plural,
    conditions_text,
    interval_text,
    slack_date,
    snooze_text,
)
from bot.watch.lifecycle import STOPPED_STATUSES, Condition
from bot.watch.model import Watch, WatchTarget
from bot.watch.policy import TargetState
from bot.watch.report import FleetReport, ReportRow

_LINE_MAX = 500
_MORE_MAX = 290
# Rows are packed several to a section; one section stays under Slack's 3000.
_SECTION_TEXT = 2800
# A greedy pack of lines of at most _LINE_MAX fills each closed section past this much.
_SECTION_FILL = _SECTION_TEXT - _LINE_MAX - 100
_MIN_WATCH_TEXT = 1200

# The report's statuses (bot.watch.report.ReportRow.status) and a watched target's, as shown.
_STATUS_SHOWN: dict[str, tuple[str, str]] = {
    "no_job": (":black_circle:", "no running job"),
    "cannot_check": (":warning:", "cannot check"),
    "not_checked": (":hourglass:", "not checked yet"),
    "paused": (":double_vertical_bar:", "paused"),
    "failed": (":red_circle:", "job failed"),
    "restarting": (":arrows_counterclockwise:", "restarting"),
}
_INCIDENT_WORDS = {
    Condition.FAILED: "job failed",
    Condition.RESTARTING: "restarting",
    Condition.RISK: "risk",
    Condition.HEALTH: "low health",
}
_LEVEL_ORDER = ("high", "mid", "low")


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
    if s.incident.failed:
        return "failed"
    if s.incident.restarting:
        return "restarting"
    return "ok"


def _target_key(t: WatchTarget) -> str:
    kind = _target_kind(t.state)
    if kind == "ok":
        return one_line(Risk.parse(t.state.last_observed_risk).label.lower(), 40)
    return _STATUS_SHOWN[kind][1]


_KIND_ORDER = {"failed": -2, "restarting": -1, "ok": 0, "cannot_check": 1, "no_job": 2, "not_checked": 3}


def _target_sort_key(t: WatchTarget) -> tuple[bool, int, int, int, str]:
    # Worst first, like the report: highest level, then lowest health; muted ones last.
    s = t.state
    kind = _target_kind(s)
    rank = Risk.parse(s.last_observed_risk).rank if kind in ("ok", "restarting") else 0
    health = s.last_health_score if s.last_health_score is not None else 101
    return (
        t.muted,
        _KIND_ORDER[kind] if kind in ("failed", "restarting") else 0,
        -rank,
        _KIND_ORDER[kind],
        health,
        t.label,
    )


def _target_line(t: WatchTarget, now: datetime) -> str:
    s = t.state
    kind = _target_kind(s)
    name = bold(t.label, _LINE_NAME_MAX) or code(t.deployment_id, _LINE_NAME_MAX)
    parts: list[str] = []
    if kind in ("ok", "failed", "restarting"):
        risk = Risk.parse(s.last_observed_risk)
        emoji = risk.emoji
        if kind != "ok":
            emoji, shown = _STATUS_SHOWN[kind]
            parts.append(shown)
        parts += [one_line(risk.label, 40), _health_plain(s.last_health_score)]
        status = (s.last_job_status or "").upper()
        if status in STOPPED_STATUSES:
            parts.append(f"job {status.lower()} (not a failure)")
    else:
        emoji, shown = _STATUS_SHOWN[kind]
        if kind == "cannot_check":
            shown = f"cannot check ({_plural(s.failure_streak, 'failure')})"
        stopped = (s.last_job_status or "").upper()
        if kind == "no_job" and stopped in STOPPED_STATUSES:
            shown = f"no running job (job {stopped.lower()}, not a failure)"
        parts.append(shown)
        if kind == "cannot_check" and s.last_observed_risk is not None:
            parts.append(f"last seen {one_line(Risk.parse(s.last_observed_risk).label, 40)}")
    if s.last_checked_at is not None:
        parts.append(f"checked {slack_date(s.last_checked_at)}")
    if s.incident.incident_open:
        open_now = ", ".join(_INCIDENT_WORDS[c] for c in s.incident.announced)
        parts.append(f":rotating_light: open incident: {open_now}")
    snooze = snooze_text(s, now)
    if snooze is not None:
        parts.append(f":zzz: snoozed {snooze}")
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


def _outage_line(w: Watch) -> str:
    since = slack_date(w.outage.since) if w.outage.since else "?"
    what = _plural(len(w.outage.listed), "deployment")
    return f":warning: in an outage: can't check {what} since {since} (see the can't-check note)"


def _watch_title(w: Watch, count: int) -> str:
    how = f"{escape_mrkdwn(conditions_text(w.conditions))} · {interval_text(w.interval_seconds)}"
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
        if w.outage.open:
            head.append(_outage_line(w))
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
    if r.status in ("ok", "failed", "restarting"):
        risk = Risk.parse(r.risk)
        emoji = risk.emoji
        if r.status != "ok":
            emoji, shown = _STATUS_SHOWN[r.status]
            parts.append(shown)
        health = _health_plain(r.health_score)
        delta = r.health_delta
        if delta:
            health += f" ({delta:+d})"
        parts += [one_line(risk.label, 40), health]
    else:
        emoji, shown = _STATUS_SHOWN.get(r.status, (":grey_question:", one_line(r.status, 40)))
        parts.append(shown)
    if (r.job_status or "").upper() in STOPPED_STATUSES:
        parts.append(f"job {one_line((r.job_status or '').lower(), 20)} (not a failure)")
    if r.status_change is not None:
        was = _STATUS_SHOWN.get(r.status_change, ("", one_line(r.status_change, 40)))[1]
        parts.append(f"was {was if r.status_change != 'ok' else 'fine'} at the last report")
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
