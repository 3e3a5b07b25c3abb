"""Block Kit as plain text, for the local console: Slack markup resolved, buttons numbered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.slack import blocks as bk
from bot.slack.blocks import Message

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
