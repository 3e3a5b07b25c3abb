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


def _button(action_id: str, text: str = "x", **more: str) -> dict:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}} | more


def _one(block: dict) -> dict:
    """`block` fitted alone, so each per-block limit binds before the message's total does."""
    out = enforce_limits(Message(text="t", blocks=[block]))
    assert problems(out) == []
    _sdk_ok(out.blocks)
    (fitted,) = out.blocks
    return fitted


def test_every_per_block_limit_is_enforced():
    long = escape_mrkdwn("<x>&" * 3000)
    header = _one(
        {"type": "header", "block_id": "h" * 300, "text": {"type": "plain_text", "text": "H" * 500}}
    )
    assert len(header["block_id"]) == 255
    assert slack_len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")

    section = _one(_section(long))["text"]["text"]
    assert 2990 <= slack_len(section) <= 3000 and section.endswith("…")
    assert PARTIAL_ENTITY.search(section[:-1]) is None

    many = _one({"type": "section", "fields": [{"type": "mrkdwn", "text": "f"} for _ in range(15)]})
    assert len(many["fields"]) == 10
    # Three long fields stay inside the total, so the field limit is what cuts them.
    wide = _one({"type": "section", "fields": [{"type": "mrkdwn", "text": long} for _ in range(3)]})
    assert all(1990 <= slack_len(f["text"]) <= 2000 and f["text"].endswith("…") for f in wide["fields"])

    context = _one({"type": "context", "elements": [{"type": "mrkdwn", "text": "c"} for _ in range(14)]})
    assert len(context["elements"]) == 10
    wide = _one({"type": "context", "elements": [{"type": "mrkdwn", "text": long} for _ in range(3)]})
    assert all(1990 <= slack_len(e["text"]) <= 2000 for e in wide["elements"])

    actions = _one(
        {
            "type": "actions",
            "elements": [_button(f"a{i}" + "x" * 300, "B" * 100, value="v") for i in range(30)],
        }
    )
    assert len(actions["elements"]) == 25
    assert all(len(e["action_id"]) == 255 and slack_len(e["text"]["text"]) == 75 for e in actions["elements"])
    # A value that is too long can't be cut (it would no longer parse): that button goes.
    kept = _one({"type": "actions", "elements": [_button("big", value="v" * 2001), _button("ok", value="v")]})
    assert [e["action_id"] for e in kept["elements"]] == ["ok"]

    assert _one(_section(""))["text"]["text"] == "—"
    assert slack_len(enforce_limits(Message(text="x" * 5000, blocks=[])).text) == 3000


def test_all_of_it_at_once_still_fits_the_total():
    long = escape_mrkdwn("<x>&" * 3000)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "H" * 500}},
        _section(long),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": long} for _ in range(15)]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": long} for _ in range(14)]},
        {"type": "actions", "elements": [_button(f"a{i}", "B" * 100) for i in range(30)]},
    ]
    out = enforce_limits(Message(text="t", blocks=blocks))
    # Nothing here is a list item: every block stays, its texts cut.
    assert [b["type"] for b in out.blocks] == ["header", "section", "section", "context", "actions"]
    assert bk.MAX_TOTAL_TEXT - 100 <= bk.text_len(out.blocks) <= bk.MAX_TOTAL_TEXT
    section, fields, context = (
        out.blocks[1]["text"]["text"],
        out.blocks[2]["fields"],
        out.blocks[3]["elements"],
    )
    assert section.endswith("…") and PARTIAL_ENTITY.search(section[:-1]) is None
    # The longest texts are cut to one length; button labels (75) are short enough to stay whole.
    assert {slack_len(f["text"]) for f in fields} | {slack_len(e["text"]) for e in context} <= set(
        range(slack_len(section) - 5, slack_len(section) + 1)
    )
    assert slack_len(section) < 500
    assert all(b["text"]["text"] == "B" * 74 + "…" for b in out.blocks[4]["elements"])
    _sdk_ok(out.blocks)
    assert problems(out) == []


# --- the message's total text -----------------------------------------------------------------


def _diagnosis_like(items: int, size: int) -> list[dict]:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "High risk · orders"}},
        {"type": "section", "block_id": "facts", "fields": [{"type": "mrkdwn", "text": "*Health*\n12"}]},
        _section("*Since yesterday*\nRisk up", "change"),
        {"type": "divider"},
        _section("*Startup* · 10", "cat.startup"),
    ]
    blocks += [_section(f"symptom {i} " + "d" * size, f"sym.{i}") for i in range(min(items, 10))]
    blocks += [_section("*Runtime*", "cat.runtime")]
    blocks += [_section(f"symptom {i} " + "d" * size, f"sym.{i}") for i in range(10, items)]
    blocks += [_actions(), {"type": "context", "block_id": "shared_by", "elements": [_mrkdwn("Shared by x")]}]
    return blocks


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _overflow_text(out: Message) -> str:
    (summary,) = [b for b in out.blocks if b.get("block_id") == "overflow"]
    return summary["elements"][0]["text"]


@pytest.mark.parametrize(("items", "size"), [(30, 2500), (300, 1000), (12, 2900), (40, 10), (60, 10)])
def test_long_items_are_summarised_within_the_total_and_the_rest_survives(items, size):
    blocks = _diagnosis_like(items, size)
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert bk.message_text_len(out) <= bk.MAX_TOTAL_TEXT
    ids = [b.get("block_id") for b in out.blocks]
    kept = [i for i in ids if str(i).startswith("sym.")]
    if len(blocks) <= bk.MAX_BLOCKS and items * size <= bk.MAX_TOTAL_TEXT - 500:
        assert kept == [f"sym.{i}" for i in range(items)] and "overflow" not in ids
        return
    # The first items in order, then one line saying how many more there are.
    assert kept == [f"sym.{i}" for i in range(len(kept))] and 0 < len(kept) < items
    assert _overflow_text(out) == f"…and {items - len(kept)} more symptoms — see the Flink console for all"
    assert ids.index("overflow") == ids.index(kept[-1]) + 1
    # Dropping stops as soon as the rest fits: one more item would not have.
    if len(out.blocks) < bk.MAX_BLOCKS:
        assert bk.message_text_len(out) + slack_len(blocks[5]["text"]["text"]) > bk.MAX_TOTAL_TEXT - 200
    assert out.blocks[0]["type"] == "header"
    assert {"facts", "change", "actions", "shared_by"} <= set(ids)
    assert ids[-2:] == ["actions", "shared_by"]
    # A category whose items all went is not left as a heading of nothing.
    assert ("cat.runtime" in ids) == any(int(k.split(".")[1]) >= 10 for k in kept)
    _sdk_ok(out.blocks)
    assert problems(out) == []


def test_what_may_not_be_dropped_is_cut_instead():
    fields = [{"type": "mrkdwn", "text": f"*Fact {i}*\n" + "v" * 1990} for i in range(10)]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "H"}},
        {"type": "section", "block_id": "facts", "fields": fields},
        _section("c" * 2900, "change"),
        _section("s" * 2900, "sym.0"),
        _actions(),
        {"type": "context", "block_id": "shared_by", "elements": [_mrkdwn("Shared by x")]},
    ]
    out = enforce_limits(Message(text="t", blocks=blocks))
    ids = [b.get("block_id") for b in out.blocks]
    assert ids == [None, "facts", "change", "overflow", "actions", "shared_by"]
    assert "…and 1 more symptom —" in _overflow_text(out)
    facts = out.blocks[1]["fields"]
    assert len(facts) == 10
    assert all(f["text"].startswith(f"*Fact {i}*") and f["text"].endswith("…") for i, f in enumerate(facts))
    assert out.blocks[2]["text"]["text"].startswith("ccc") and out.blocks[2]["text"]["text"].endswith("…")
    assert out.blocks[4]["elements"][0]["text"]["text"] == "Go"
    assert out.blocks[5]["elements"][0]["text"] == "Shared by x"
    assert bk.message_text_len(out) <= bk.MAX_TOTAL_TEXT
    assert problems(out) == []


def test_too_many_blocks_never_drops_what_a_message_is_about():
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "H"}},
        {"type": "section", "block_id": "facts", "fields": [_mrkdwn("*Health*\n1")]},
        _section("changed", "change"),
    ]
    blocks += [_section(f"plain {i}") for i in range(60)]
    blocks += [_actions(), {"type": "context", "block_id": "shared_by", "elements": [_mrkdwn("Shared by x")]}]
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert len(out.blocks) == bk.MAX_BLOCKS
    ids = [b.get("block_id") for b in out.blocks]
    assert out.blocks[0]["type"] == "header" and ids[1:3] == ["facts", "change"]
    assert ids[-2:] == ["actions", "shared_by"]
    assert _overflow_text(out) == "…and 16 more blocks (message too long for Slack)"


def test_a_message_within_both_limits_is_left_as_it_is():
    blocks = _diagnosis_like(3, 2000)
    out = enforce_limits(Message(text="t", blocks=blocks))
    assert out.blocks == blocks


@pytest.mark.parametrize("attached", [50, 2900])
def test_attachments_share_the_total(attached):
    att = [{"color": "#fff", "blocks": [_section("a" * attached, "summary")]}]
    out = enforce_limits(Message(text="t", blocks=_diagnosis_like(30, 1000), attachments=att))
    assert bk.message_text_len(out) <= bk.MAX_TOTAL_TEXT
    summary = out.attachments[0]["blocks"][0]["text"]["text"]
    # Attachments get at most a quarter; the message itself gets what they left.
    assert slack_len(summary) == min(attached, bk.MAX_TOTAL_TEXT // 4)
    assert bk.text_len(out.blocks) > bk.MAX_TOTAL_TEXT - slack_len(summary) - 1200
    assert problems(out) == []


def test_text_len_counts_every_text_in_utf16_units():
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "😀ab"}},
        {"type": "section", "text": _mrkdwn("x" * 10), "fields": [_mrkdwn("f" * 3)]},
        {"type": "context", "elements": [_mrkdwn("c" * 4)]},
        {
            "type": "actions",
            "elements": [
                _button("a", "Go")
                | {
                    "confirm": {
                        "title": {"type": "plain_text", "text": "T"},
                        "text": _mrkdwn("sure?"),
                        "confirm": {"type": "plain_text", "text": "Yes"},
                        "deny": {"type": "plain_text", "text": "No"},
                    }
                }
            ],
        },
    ]
    assert bk.text_len(blocks) == 4 + 10 + 3 + 4 + 2 + 1 + 5 + 3 + 2
    m = Message(text="fallback is not counted", blocks=blocks, attachments=[{"blocks": [_section("abc")]}])
    assert bk.message_text_len(m) == bk.text_len(blocks) + 3


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
    # Each block within its limits, yet together past the total: counted across attachments too.
    near = [_section("x" * 2900) for _ in range(3)]
    assert problems(Message(text="t", blocks=near)) == []
    past = Message(text="t", blocks=near, attachments=[{"blocks": [_section("y" * 301)]}])
    assert problems(past) == [f"block texts add up to 9001 characters (max {bk.MAX_TOTAL_TEXT})"]
    assert problems(Message(text="t", blocks=[_section("fine")])) == []


def test_message_to_slack_shapes_kwargs():
    m = Message(text="hi", blocks=[_section("x")])
    assert m.to_slack() == {"text": "hi", "blocks": [_section("x")]}
    with pytest.raises(ValueError):
        Message(text="", blocks=[])
