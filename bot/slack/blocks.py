"""Slack's Block Kit limits, mrkdwn escaping and safe truncation, enforced in exactly one place.

Templates lay messages out; this module makes whatever they produced fit Slack's limits
(`enforce_limits`) and tells what is still wrong (`problems`). Nothing here knows about Flink.

Escaping follows Slack's formatting guide: only `&`, `<` and `>` are control characters, and
every mention or link needs a literal `<`, so escaped text can never ping anyone or build a link.
Slack decodes the same three entities in `plain_text` objects too (button texts come back
entity-encoded in interaction payloads, bolt-python#513), so one escaper serves both kinds.
"""

from __future__ import annotations

import copy
import logging
import re
import unicodedata
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
# Slack's pages give no separate figure for context texts; 2000 keeps them well inside the
# text object's general limit and matches the fields limit (unverified).
MAX_CONTEXT_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ID = 255
# The brief's own bound for the notification fallback; Slack truncates past 40,000.
MAX_FALLBACK_TEXT = 3000
# All text objects of a message's blocks and attachment blocks together. Slack refuses a message
# whose block texts add up past an undocumented total with `msg_blocks_too_long`, long before 50
# sections of 3000 would: bolt-js#2509 found 13,297 characters of markdown blocks accepted and
# less once dividers were added; bolt-js#2867 saw 11,341 characters (every `.text` summed, as
# here) refused by chat.postMessage while respond() took the same blocks. A maintainer spoke of
# "12,000 text characters with a buffer for block containers". 9000 keeps a margin under all of
# that (unverified: Slack documents no such limit).
MAX_TOTAL_TEXT = 9000
# The "…and N more" line is cut to this, so room for it can be set aside before it is written.
MAX_SUMMARY_TEXT = 200

ELLIPSIS = "…"


class ItemKind(NamedTuple):
    """What a list item is called in the "…and N more" line, and where to find the rest."""

    one: str
    many: str
    hint: str


# Block ids with these prefixes mark list items that may be summarised away when a message has
# too many blocks or too much text.
ITEM_PREFIXES: dict[str, ItemKind] = {
    # Re-running shows the same list cut the same way; the console lists every symptom.
    "sym": ItemKind("symptom", "symptoms", "see the Flink console for all"),
    "choice": ItemKind("match", "matches", "add `--namespace` to narrow it down"),
    "dig": ItemKind("deployment", "deployments", "`/flinkdiag watches` lists them all"),
}
# Titles of item groups: dropped with their items, never counted.
GROUP_PREFIXES: tuple[str, ...] = ("cat",)
# What a message is about: never dropped to make room (headers and actions blocks neither).
# Templates give these ids to the key facts, the change section and the shared-by line.
KEEP_BLOCK_IDS: frozenset[str] = frozenset({"facts", "change", "shared_by"})


class Message(BaseModel):
    """One Slack message: a plain-text fallback, Block Kit blocks and an optional colour bar."""

    text: str = Field(min_length=1)
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    attachments: list[dict[str, Any]] | None = None

    def to_slack(self) -> dict[str, Any]:
        """Keyword arguments for `chat.postMessage`, `chat.update` or `respond`."""
        out: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if self.attachments:
            out["attachments"] = self.attachments
        return out


# --- escaping -------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_mrkdwn(text: object) -> str:
    """Escape `&`, `<`, `>` so text from the API or a user is shown, never parsed.

    `str.translate` maps each character once, so `&` is effectively replaced first and an
    already-escaped `&lt;` is shown as the five characters it is.
    """
    if text is None:
        return ""
    return str(text).translate(_ESCAPES)


def unescape_mrkdwn(text: str) -> str:
    """Inverse of `escape_mrkdwn` (for showing Slack text outside Slack)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# mrkdwn has no escape character, so a delimiter inside its own span is swapped for a look-alike.
_CODE_SAFE = str.maketrans({"`": "\u02cb", "\n": " ", "\r": " "})
_BOLD_SAFE = str.maketrans({"*": "\u2217", "\n": " ", "\r": " "})


def one_line(text: object, limit: int | None = None) -> str:
    """Escaped text with line breaks folded to spaces, cut to `limit` when given."""
    s = " ".join(escape_mrkdwn(text).split())
    return cut(s, limit) if limit else s


def code(text: object, limit: int | None = None) -> str:
    """An escaped inline code span; backticks and newlines inside it would end or break it."""
    s = one_line(text, limit).translate(_CODE_SAFE)
    return f"`{s}`" if s else "—"


def bold(text: object, limit: int | None = None) -> str:
    """An escaped bold span (empty when there is no text); an asterisk inside would end it early."""
    s = one_line(text, limit).translate(_BOLD_SAFE)
    return f"*{s}*" if s else ""


# --- length and truncation ------------------------------------------------------------------


def slack_len(text: str) -> int:
    """Length as UTF-16 code units.

    Slack does not say how it counts; JavaScript counts UTF-16 units, which is never less than
    Python's code-point count, so a text that fits this measure fits either way.
    """
    return len(text.encode("utf-16-le")) // 2


_ENTITY = re.compile(r"&(?:amp|lt|gt|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
_ZWJ = "\u200d"


def _extends_cluster(ch: str) -> bool:
    """Characters that attach to the one before them (so a cut must not fall just before them)."""
    o = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch == _ZWJ
        or 0xFE00 <= o <= 0xFE0F  # variation selectors (emoji vs text presentation)
        or 0x1F3FB <= o <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= o <= 0xE007F  # tag characters (subdivision flags)
    )


def _safe_cut(text: str, i: int) -> int:
    """Move a cut index left so it splits no entity, no `<…>` token and no character cluster."""
    # An entity such as `&amp;` cut in half would show a stray `&am`.
    amp = text.rfind("&", max(0, i - 10), i)
    if amp != -1:
        m = _ENTITY.match(text, amp)
        if m and m.end() > i:
            i = amp
    # After escaping, every `<` is our own markup (a date, a mention, a link): keep it whole.
    lt = text.rfind("<", 0, i)
    if lt != -1 and text.rfind(">", lt, i) == -1 and text.find(">", i) != -1:
        i = lt
    # Grapheme clusters: a base letter with combining marks, ZWJ emoji sequences, flags.
    while 0 < i < len(text) and (_extends_cluster(text[i]) or text[i - 1] == _ZWJ):
        i -= 1
    if 0 < i < len(text) and _is_regional(text[i]) and _is_regional(text[i - 1]):
        # Flags are pairs of regional indicators: count the run to know whether i splits a pair.
        j = i
        while j > 0 and _is_regional(text[j - 1]):
            j -= 1
        if (i - j) % 2:
            i -= 1
    return i


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def cut(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """Shorten already-escaped text to `limit` (UTF-16 units), ending with `ellipsis` if cut."""
    if slack_len(text) <= limit:
        return text
    budget = max(0, limit - slack_len(ellipsis))
    used = 0
    i = 0
    for i, ch in enumerate(text):  # noqa: B007 - `i` is the cut point after the loop
        w = 2 if ord(ch) > 0xFFFF else 1
        if used + w > budget:
            break
        used += w
    i = _safe_cut(text, i)
    return text[:i].rstrip() + ellipsis


# --- enforcing limits -----------------------------------------------------------------------


def _fit_text_object(obj: Any, limit: int) -> None:
    if not isinstance(obj, dict):
        return
    t = obj.get("text")
    if not isinstance(t, str):
        return
    if not t.strip():
        obj["text"] = "—"  # Slack rejects empty text objects
    else:
        obj["text"] = cut(t, limit)


def _fit_id(obj: dict[str, Any], key: str) -> None:
    v = obj.get(key)
    if isinstance(v, str) and len(v) > MAX_ID:
        obj[key] = v[:MAX_ID]


def _fit_element(el: Any) -> Any | None:
    """Fit one interactive element; None when it cannot be made valid (and must be dropped)."""
    if not isinstance(el, dict):
        return el
    _fit_id(el, "action_id")
    if el.get("type") != "button":
        return el
    _fit_text_object(el.get("text"), MAX_BUTTON_TEXT)
    value = el.get("value")
    # A cut value would no longer parse; a cut url would lead somewhere else. Drop instead.
    if isinstance(value, str) and len(value) > MAX_BUTTON_VALUE:
        log.warning("button_dropped reason=value_too_long action_id=%s", el.get("action_id"))
        return None
    url = el.get("url")
    if isinstance(url, str) and len(url) > MAX_BUTTON_URL:
        log.warning("button_dropped reason=url_too_long action_id=%s", el.get("action_id"))
        return None
    return el


def _fit_block(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    _fit_id(block, "block_id")
    if kind == "header":
        _fit_text_object(block.get("text"), MAX_HEADER_TEXT)
    elif kind == "section":
        if "text" in block:
            t = block["text"]
            if isinstance(t, dict) and not str(t.get("text", "")).strip() and block.get("fields"):
                del block["text"]
            else:
                _fit_text_object(t, MAX_SECTION_TEXT)
        fields = block.get("fields")
        if isinstance(fields, list):
            if not fields:
                del block["fields"]
            else:
                if len(fields) > MAX_FIELDS:
                    fields[:] = fields[:MAX_FIELDS]
                for f in fields:
                    _fit_text_object(f, MAX_FIELD_TEXT)
        if "accessory" in block:
            acc = _fit_element(block["accessory"])
            if acc is None:
                del block["accessory"]
        if "text" not in block and "fields" not in block:
            return None
    elif kind == "context":
        els = block.get("elements")
        if isinstance(els, list):
            del els[MAX_CONTEXT_ELEMENTS:]
            for e in els:
                if isinstance(e, dict) and e.get("type") in ("mrkdwn", "plain_text"):
                    _fit_text_object(e, MAX_CONTEXT_TEXT)
            if not els:
                return None
    elif kind == "actions":
        els = block.get("elements")
        if isinstance(els, list):
            kept = [e for e in (_fit_element(e) for e in els[:MAX_ACTIONS_ELEMENTS]) if e is not None]
            if not kept:
                return None
            block["elements"] = kept
    return block


def _prefix(block: dict[str, Any]) -> str:
    bid = block.get("block_id")
    return bid.split(".", 1)[0] if isinstance(bid, str) else ""


def _text_objects(obj: Any) -> list[dict[str, Any]]:
    """Every dict holding a `text` string, depth first: text objects, fields, context elements,
    button labels and confirm dialogs alike."""
    if isinstance(obj, list):
        return [o for v in obj for o in _text_objects(v)]
    if not isinstance(obj, dict):
        return []
    own = [obj] if isinstance(obj.get("text"), str) else []
    return own + [
        o for k, v in obj.items() if k != "text" or not isinstance(v, str) for o in _text_objects(v)
    ]


def text_len(blocks: Any) -> int:
    """The characters (UTF-16 units) of every text in `blocks`, as counted against MAX_TOTAL_TEXT."""
    return sum(slack_len(o["text"]) for o in _text_objects(blocks))


def message_text_len(message: Message) -> int:
    """Text of the message's blocks and attachment blocks together (the fallback is not counted)."""
    attached = [a.get("blocks") or [] for a in message.attachments or [] if isinstance(a, dict)]
    return text_len(message.blocks) + text_len(attached)


def _summary_block(counts: dict[str, int], other: int) -> dict[str, Any]:
    parts = []
    for prefix, n in counts.items():
        if n:
            kind = ITEM_PREFIXES[prefix]
            parts.append(f"{n} more {kind.one if n == 1 else kind.many}")
    if other:
        parts.append(f"{other} more block{'s' if other != 1 else ''}")
    listed = [p for p, n in counts.items() if n]
    if len(listed) == 1 and not other:
        tail = " — " + ITEM_PREFIXES[listed[0]].hint
    else:
        tail = " (message too long for Slack)"
    text = cut("…and " + ", ".join(parts) + tail, MAX_SUMMARY_TEXT)
    return {"type": "context", "block_id": "overflow", "elements": [{"type": "mrkdwn", "text": text}]}


def _kept(block: dict[str, Any]) -> bool:
    return block.get("type") in ("header", "actions") or block.get("block_id") in KEEP_BLOCK_IDS


def _cap_texts(blocks: list[dict[str, Any]], budget: int) -> None:
    """Cut the longest texts, all to one length, until every text together fits `budget`.

    The last resort when what is left is still too long (ten fields of 2000, say): the longest
    texts lose most, and short ones such as button labels stay whole unless nothing else is left.
    """
    objs = _text_objects(blocks)
    lens = [slack_len(o["text"]) for o in objs]
    if sum(lens) <= budget:
        return
    lo, hi = 1, max(lens)  # the largest cap at which the capped lengths still fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lens) <= budget:
            lo = mid
        else:
            hi = mid - 1
    for o, n in zip(objs, lens, strict=True):
        if n > lo:
            o["text"] = cut(o["text"], lo)


def _fit_size(blocks: list[dict[str, Any]], limit: int, budget: int) -> list[dict[str, Any]]:
    """At most `limit` blocks whose texts add up to at most `budget`.

    List items go first, from the end, with a "…and N more" line in their place, so the first
    items, the header, the key facts, the change section, the buttons and the shared-by line
    survive a flood of symptoms. Without enough list items (an operator template?) other blocks
    go from the tail while there are too many; texts still too long together are cut last,
    which loses less of a block than dropping it would.
    """
    sizes = [text_len(b) for b in blocks]
    if len(blocks) <= limit and sum(sizes) <= budget:
        return blocks
    dropped: set[int] = set()
    kept_text = sum(sizes)

    def drop(i: int) -> None:
        nonlocal kept_text
        dropped.add(i)
        kept_text -= sizes[i]

    def over_count() -> bool:
        # Once anything is dropped, the summary line takes a block too.
        return len(blocks) - len(dropped) + (1 if dropped else 0) > limit

    def over_text() -> bool:
        return kept_text + MAX_SUMMARY_TEXT > budget

    droppable = [
        i for i, b in enumerate(blocks) if _prefix(b) in ITEM_PREFIXES or _prefix(b) in GROUP_PREFIXES
    ]
    for i in reversed(droppable):
        if not (over_count() or over_text()):
            break
        drop(i)
    # A group title left with none of its items would be a dangling heading.
    kept_droppable = [i for i in droppable if i not in dropped]
    while kept_droppable and _prefix(blocks[kept_droppable[-1]]) in GROUP_PREFIXES:
        drop(kept_droppable.pop())
    other = 0
    for i in reversed(range(len(blocks))):
        if not over_count():
            break
        if i not in dropped and not _kept(blocks[i]):
            drop(i)
            other += 1
    out: list[dict[str, Any]] = []
    if dropped:
        counts = {p: 0 for p in ITEM_PREFIXES}
        for i in dropped:
            p = _prefix(blocks[i])
            if p in counts:
                counts[p] += 1
        first = min(dropped)
        for i, b in enumerate(blocks):
            if i == first:
                out.append(_summary_block(counts, other))
            if i not in dropped:
                out.append(b)
    else:
        out = list(blocks)
    # Still too many only when more blocks than the limit may not be dropped (an operator's template).
    out = out[:limit]
    _cap_texts(out, budget)
    return out


def _fit_blocks(blocks: list[Any], limit: int, budget: int) -> list[dict[str, Any]]:
    fitted = [b for b in (_fit_block(b) for b in blocks if isinstance(b, dict)) if b is not None]
    return _fit_size(fitted, limit, budget)


def enforce_limits(message: Message, *, owned: bool = False) -> Message:
    """A copy of `message` that fits Slack's limits: texts cut with "…", lists capped, the block
    count and the total text (MAX_TOTAL_TEXT) kept by summarising list items, a non-empty
    fallback text. Inputs must already be escaped. `owned`: the caller made `message` for this
    call (the renderer, from freshly parsed JSON), so its blocks are fitted in place, not copied."""
    dup = (lambda v: v) if owned else copy.deepcopy
    attachments = None
    used = 0
    if message.attachments:
        attachments = []
        for a in dup(message.attachments):
            if isinstance(a, dict) and isinstance(a.get("blocks"), list):
                # Attachments carry a summary line; a quarter of the budget leaves the rest to
                # the message itself, which is fitted last into what they left.
                a["blocks"] = _fit_blocks(a["blocks"], MAX_BLOCKS, max(0, MAX_TOTAL_TEXT // 4 - used))
                used += text_len(a["blocks"])
            attachments.append(a)
    blocks = _fit_blocks(dup(message.blocks), MAX_BLOCKS, MAX_TOTAL_TEXT - used)
    text = " ".join(message.text.split()) if message.text.strip() else "flinkdiag"
    return Message(text=cut(text, MAX_FALLBACK_TEXT), blocks=blocks, attachments=attachments)


def problems(message: Message) -> list[str]:
    """Every way `message` would be refused by Slack that we can tell locally (empty if fine).

    slack_sdk's models run their own checks lazily in `to_dict()`; the block count, the total
    text, field and context lengths and the fallback are checked here because slack_sdk does not.
    """
    # Imported here so render code can be loaded without touching slack_sdk's model package.
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    found: list[str] = []
    if not message.text.strip() or slack_len(message.text) > MAX_FALLBACK_TEXT:
        found.append("fallback text empty or too long")
    total = message_text_len(message)
    if total > MAX_TOTAL_TEXT:
        found.append(f"block texts add up to {total} characters (max {MAX_TOTAL_TEXT})")
    groups = [("blocks", message.blocks)]
    for n, a in enumerate(message.attachments or []):
        groups.append((f"attachments[{n}].blocks", a.get("blocks") or []))
    for where, blocks in groups:
        if len(blocks) > MAX_BLOCKS:
            found.append(f"{where}: {len(blocks)} blocks (max {MAX_BLOCKS})")
        for i, b in enumerate(blocks):
            try:
                parsed = Block.parse(b)
                if parsed is None or type(parsed) is Block:
                    found.append(f"{where}[{i}]: unknown block type {b.get('type')!r}")
                    continue
                parsed.to_dict()
            except (SlackObjectFormationError, TypeError, ValueError, AttributeError) as e:
                found.append(f"{where}[{i}]: {e}")
                continue
            for f in b.get("fields") or []:
                if slack_len(f.get("text", "")) > MAX_FIELD_TEXT:
                    found.append(f"{where}[{i}]: field longer than {MAX_FIELD_TEXT}")
            if b.get("type") == "context":
                for e in b.get("elements") or []:
                    if isinstance(e, dict) and slack_len(str(e.get("text", ""))) > MAX_CONTEXT_TEXT:
                        found.append(f"{where}[{i}]: context text longer than {MAX_CONTEXT_TEXT}")
    return found
