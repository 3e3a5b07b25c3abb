"""Checks shared by the render tests, written independently of bot.slack.blocks on purpose."""

from __future__ import annotations

from typing import Any


def utf16_len(s: str) -> int:
    """Length as Slack counts it (UTF-16 code units)."""
    return len(s.encode("utf-16-le")) // 2


def strings(obj: Any) -> list[str]:
    """Every string anywhere in a JSON-like value."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def text_chars(obj: Any) -> int:
    """Characters in every `text` string, as Slack adds them up for msg_blocks_too_long."""
    if isinstance(obj, dict):
        own = utf16_len(obj["text"]) if isinstance(obj.get("text"), str) else 0
        return own + sum(text_chars(v) for k, v in obj.items() if k != "text" or not isinstance(v, str))
    if isinstance(obj, list):
        return sum(text_chars(v) for v in obj)
    return 0
