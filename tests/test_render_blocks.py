"""Escaping, truncation and Slack's limits (bot/slack/blocks.py), checked against slack_sdk too."""

from __future__ import annotations

import re
import unicodedata

import pytest
from slack_sdk.models.blocks import Block

from bot.slack import blocks as bk
from bot.slack.blocks import Message, bold, code, cut, enforce_limits, escape_mrkdwn, problems, slack_len

PARTIAL_ENTITY = re.compile(r"&[#\w]*$")


def _sdk_ok(blocks: list[dict]) -> None:
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None, b
        parsed.to_dict()  # runs slack_sdk's lazy validations; raises SlackObjectFormationError


# --- escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<http://evil|click>", "&lt;http://evil|click&gt;"),
        ("&lt;", "&amp;lt;"),  # already-escaped text is shown as typed, not decoded
        ("a & b > c", "a &amp; b &gt; c"),
        ("*bold* `code` _it_", "*bold* `code` _it_"),  # only &, <, > are control characters
        (None, ""),
    ],
)
def test_escape_mrkdwn(raw, escaped):
    assert escape_mrkdwn(raw) == escaped


def test_code_span_cannot_be_broken_out_of():
    s = code("ab`c\nd<!here>")
    assert s.startswith("`") and s.endswith("`")
    assert s.count("`") == 2
    assert "\n" not in s
    assert "<!" not in s
    assert code("") == "—"


def test_bold_span_keeps_its_own_delimiters():
    s = bold("*x* y\nz")
    assert s.startswith("*") and s.endswith("*")
    assert s.count("*") == 2
    assert bold("   ") == ""


# --- truncation ------------------------------------------------------------------------------


def test_cut_leaves_short_text_alone():
    assert cut("hello", 5) == "hello"


@pytest.mark.parametrize("limit", range(10, 30))
def test_cut_never_splits_an_entity(limit):
    text = escape_mrkdwn("x" * 8 + "<&>" * 10)
    out = cut(text, limit)
    assert out.endswith("…")
    assert slack_len(out) <= limit
    assert PARTIAL_ENTITY.search(out[:-1]) is None, out


@pytest.mark.parametrize("limit", range(5, 70, 3))
def test_cut_never_splits_our_own_markup(limit):
    text = "at <!date^1740389560^{date_short_pretty} {time}|2025-02-24 09:32 UTC> and more text here"
    out = cut(text, limit)
    body = out[:-1]
    assert body.count("<") == body.count(">"), out


@pytest.mark.parametrize("limit", [20, 21, 22, 23])
def test_cut_keeps_four_byte_emoji_whole(limit):
    text = "a" * 19 + "😀" + "b" * 10  # the emoji straddles the boundary for some limits
    out = cut(text, limit)
    assert slack_len(out) <= limit
    out.encode("utf-8")  # no lone surrogate
    assert "😀" in out or out == "a" * 19 + "…"


@pytest.mark.parametrize("limit", range(8, 16))
def test_cut_keeps_combining_marks_and_zwj_sequences_with_their_base(limit):
    text = "ab" + "e\u0301" * 3 + "👩\u200d💻" + "x\u0308\u0304" + "z" * 20
    out = cut(text, limit)
    body = out[:-1]
    assert slack_len(out) <= limit
    nxt = text[len(body)] if len(body) < len(text) else ""
    assert text.startswith(body)
    # The first character left out never belongs to the last character kept.
    assert not (nxt and (unicodedata.combining(nxt) or nxt == "\u200d")), (body, nxt)
    assert not body.endswith("\u200d")


def test_cut_counts_utf16_units():
    out = cut("😀" * 100, 11)
    assert slack_len(out) <= 11
    assert out == "😀" * 5 + "…"


# --- enforcing limits --------------------------------------------------------------------------


def _section(text: str, block_id: str | None = None) -> dict:
    b = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        b["block_id"] = block_id
    return b


def _actions() -> dict:
    return {
        "type": "actions",
        "block_id": "actions",
        "elements": [
            {"type": "button", "action_id": "rerun_diagnosis", "text": {"type": "plain_text", "text": "Go"}}
        ],
    }


def test_flood_of_items_is_summarised_and_buttons_survive():
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "H"}},
        _section("*Runtime*", "cat.runtime"),
    ]
    blocks += [_section(f"symptom {i}", f"sym.{i}") for i in range(120)]
    blocks += [_actions()]
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert len(out.blocks) == bk.MAX_BLOCKS
    assert out.blocks[-1]["type"] == "actions"
    kept = sum(1 for b in out.blocks if str(b.get("block_id", "")).startswith("sym."))
    summary = [b for b in out.blocks if b.get("block_id") == "overflow"]
    assert len(summary) == 1
    assert f"…and {120 - kept} more symptoms" in summary[0]["elements"][0]["text"]
    # Items are dropped from the end, so the first ones are still in order.
    assert [b["block_id"] for b in out.blocks if str(b.get("block_id", "")).startswith("sym.")][:3] == [
        "sym.0",
        "sym.1",
        "sym.2",
    ]
    _sdk_ok(out.blocks)
    assert problems(out) == []


def test_group_title_is_not_left_dangling():
    blocks = [_section("first", "cat.startup")] + [_section(f"s{i}", f"sym.{i}") for i in range(47)]
    blocks += [_section("*Other*", "cat.others"), _section("last", "sym.47"), _actions(), _section("end")]
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert len(out.blocks) <= bk.MAX_BLOCKS
    ids = [b.get("block_id") for b in out.blocks]
    i = ids.index("overflow")
    assert ids[i - 1] != "cat.others"
    assert "cat.others" not in ids


def test_overflow_without_list_items_still_fits_and_keeps_actions():
    blocks = [_section(f"plain {i}") for i in range(70)] + [_actions()]
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert len(out.blocks) == bk.MAX_BLOCKS
    assert out.blocks[-1]["type"] == "actions"
    assert any("more blocks" in str(b) for b in out.blocks)
    _sdk_ok(out.blocks)


def test_every_per_block_limit_is_enforced():
    long = escape_mrkdwn("<x>&" * 3000)
    blocks = [
        {"type": "header", "block_id": "h" * 300, "text": {"type": "plain_text", "text": "H" * 500}},
        _section(long),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": long} for _ in range(15)]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": long} for _ in range(14)]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"a{i}" + "x" * 300,
                    "text": {"type": "plain_text", "text": "B" * 100},
                    "value": "v",
                }
                for i in range(30)
            ],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "big",
                    "text": {"type": "plain_text", "text": "x"},
                    "value": "v" * 2001,
                },
                {
                    "type": "button",
                    "action_id": "ok",
                    "text": {"type": "plain_text", "text": "x"},
                    "value": "v",
                },
            ],
        },
        _section(""),
    ]
    out = enforce_limits(Message(text="x" * 5000, blocks=blocks))
    header, section, fields, context, actions, actions2, empty = out.blocks
    assert len(header["block_id"]) <= 255
    assert slack_len(header["text"]["text"]) <= 150 and header["text"]["text"].endswith("…")
    assert slack_len(section["text"]["text"]) <= 3000 and section["text"]["text"].endswith("…")
    assert PARTIAL_ENTITY.search(section["text"]["text"][:-1]) is None
    assert len(fields["fields"]) == 10
    assert all(slack_len(f["text"]) <= 2000 for f in fields["fields"])
    assert len(context["elements"]) == 10
    assert all(slack_len(e["text"]) <= 2000 for e in context["elements"])
    assert len(actions["elements"]) == 25
    assert all(len(e["action_id"]) <= 255 and slack_len(e["text"]["text"]) <= 75 for e in actions["elements"])
    # A value that is too long can't be cut (it would no longer parse): that button goes.
    assert [e["action_id"] for e in actions2["elements"]] == ["ok"]
    assert empty["text"]["text"] == "—"
    assert slack_len(out.text) <= 3000
    _sdk_ok(out.blocks)
    assert problems(out) == []


def test_fallback_text_is_never_empty():
    out = enforce_limits(Message(text=" \n ", blocks=[]))
    assert out.text == "flinkdiag"


def test_attachment_blocks_are_enforced_too():
    m = Message(text="t", blocks=[], attachments=[{"color": "#fff", "blocks": [_section("y" * 4000)]}])
    out = enforce_limits(m)
    assert slack_len(out.attachments[0]["blocks"][0]["text"]["text"]) <= 3000
    assert out.to_slack()["attachments"][0]["color"] == "#fff"


def test_problems_reports_what_slack_would_refuse():
    too_many = Message(text="t", blocks=[_section("x")] * 51)
    assert any("51 blocks" in p for p in problems(too_many))
    unknown = Message(text="t", blocks=[{"type": "no_such_block"}])
    assert any("unknown block type" in p for p in problems(unknown))
    long_field = Message(
        text="t", blocks=[{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}]
    )
    assert any("field longer" in p for p in problems(long_field))
    too_long_section = Message(text="t", blocks=[_section("x" * 3001)])
    assert problems(too_long_section)
    assert problems(Message(text="t", blocks=[_section("fine")])) == []


def test_message_to_slack_shapes_kwargs():
    m = Message(text="hi", blocks=[_section("x")])
    assert m.to_slack() == {"text": "hi", "blocks": [_section("x")]}
    with pytest.raises(ValueError):
        Message(text="", blocks=[])
