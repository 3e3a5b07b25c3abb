"""Every message the bot renders is valid Block Kit, within Slack's limits and safe to post.

Each rendered message goes through slack_sdk's own model validation (`Block.parse(...).to_dict()`)
and through independent limit checks written here, over diagnosis payloads that are ordinary,
empty, sparse, huge, hostile and non-ASCII.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, nodes
from render_helpers import strings, text_chars, utf16_len
from slack_sdk.models.blocks import Block

from bot.diagnosis.report import Change, DiagnosisRun, Snapshot, SymptomKey, Target, compare
from bot.flink.models import JobDiagnosis
from bot.slack.blocks import problems
from bot.slack.render import (
    PACKAGED_TEMPLATES,
    Message,
    Renderer,
    action_value,
    blocks_to_text,
    message_to_text,
    parse_action_value,
    render_defaults,
    render_diagnosis,
    render_error,
    render_job_choice,
    render_progress,
    render_text,
    render_usage,
)

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C123|general>",
    "<http://evil|click>",
    "<https://evil.example>",
    "&lt;!everyone&gt;",
    "```",
    "`tick`",
    "*bold* _it_ ~strike~",
    '"quote" \\backslash\\ \n newline \t tab',
    "{{ 7*7 }} {% if true %}jinja{% endif %} {# c #}",
    "</script>\u2028\u2029\x00",
]
EVIL_TEXT = " ".join(HOSTILE)
# Our own markup is the only `<…>` allowed in output: Slack dates and the validated mention.
OWN_DATE = re.compile(r"^<!date\^-?\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>$")
TOKEN = re.compile(r"<[^<>]*>")
NOW = datetime(2025, 2, 24, 9, 0, tzinfo=UTC)


# --- checks ----------------------------------------------------------------------------------


def _check_button(el: dict[str, Any]) -> None:
    assert el["text"]["type"] == "plain_text"
    assert 0 < utf16_len(el["text"]["text"]) <= 75
    assert len(el["action_id"]) <= 255
    assert el.get("value") is None or len(el["value"]) <= 2000
    assert el.get("url") is None or len(el["url"]) <= 3000


def _check_blocks(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), "block ids must be unique in a message"
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None, b
        parsed.to_dict()  # slack_sdk's lazy validations; raises SlackObjectFormationError
        assert len(b.get("block_id", "")) <= 255
        kind = b["type"]
        if kind == "header":
            assert b["text"]["type"] == "plain_text"
            assert 0 < utf16_len(b["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert 0 < utf16_len(b["text"]["text"]) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(0 < utf16_len(f["text"]) <= 2000 for f in b.get("fields", []))
            if b.get("accessory", {}).get("type") == "button":
                _check_button(b["accessory"])
        elif kind == "context":
            assert 0 < len(b["elements"]) <= 10
            assert all(0 < utf16_len(e["text"]) <= 2000 for e in b["elements"])
        elif kind == "actions":
            assert 0 < len(b["elements"]) <= 25
            for el in b["elements"]:
                _check_button(el)
            action_ids = [el["action_id"] for el in b["elements"]]
            assert len(action_ids) == len(set(action_ids))


def _text_total(message: Message) -> int:
    """Every `text` string in the blocks and attachment blocks, counted independently of blocks.py."""
    return text_chars(message.blocks) + text_chars([a.get("blocks") for a in message.attachments or []])


def check(message: Message, *, mention: str | None = None) -> dict[str, Any]:
    """Everything a posted message must satisfy; returns the kwargs as Slack would receive them."""
    assert isinstance(message, Message)
    assert problems(message) == []
    # Slack refuses block texts past ~12-13k in total (msg_blocks_too_long); we stop at 9000.
    assert _text_total(message) <= 9000
    kwargs = message.to_slack()
    assert kwargs["text"].strip() and utf16_len(kwargs["text"]) <= 3000
    _check_blocks(kwargs["blocks"])
    for att in kwargs.get("attachments") or []:
        assert re.match(r"^#[0-9a-f]{6}$", att["color"])
        _check_blocks(att["blocks"])
    assert json.loads(json.dumps(kwargs)) == kwargs
    for s in strings(kwargs):
        for token in TOKEN.findall(s):
            assert OWN_DATE.match(token) or token == mention, f"unexpected markup {token!r} in {s[:200]!r}"
        # Nothing from a payload can start a mention or a link, even without a closing `>`.
        for bad in ("<!channel", "<!here", "<!everyone", "<@U123", "<#C", "<http"):
            assert bad not in s
    return kwargs


def _all_text(message: Message) -> str:
    return "\n".join(strings(message.to_slack()))


# --- payloads --------------------------------------------------------------------------------


def _symptom(i: int, text: str = "") -> dict[str, str]:
    return {
        "name": f"Symptom {i} {text}",
        "description": f"description {i} {text}",
        "recommendation": f"do {i}",
    }


def _api_example() -> dict[str, Any]:
    data = json.loads((FIXTURES / "render_api_example.json").read_text())
    data.pop("_comment")
    return data


def _huge() -> dict[str, Any]:
    big = "x" * 10_000
    return {
        "riskLevel": "RISK_LEVEL_HIGH",
        "healthScore": 12,
        "symptoms": {
            "startup": [_symptom(i, big) for i in range(100)],
            "runtime": [_symptom(i, big) for i in range(100, 200)],
            "others": [_symptom(i, big) for i in range(200, 300)],
        },
    }


def _hostile() -> dict[str, Any]:
    evil = {"name": EVIL_TEXT, "description": EVIL_TEXT, "recommendation": EVIL_TEXT}
    return {
        "riskLevel": "<!channel> RISK",
        "healthScore": 55,
        "diagnoseId": "<@U123>`id`",
        "symptoms": {c: [evil, evil] for c in ("startup", "runtime", "troubleshooting", "state", "others")}
        | {"autopilot": evil},
    }


def _non_ascii() -> dict[str, Any]:
    # 4-byte emoji right at the description cut (1500 UTF-16 units, 1499 before the ellipsis).
    boundary = "a" * 1498 + "😀" + "b" * 50
    return {
        "riskLevel": "RISK_LEVEL_MID",
        "healthScore": 70,
        "symptoms": {
            "runtime": [
                {
                    "name": "检查点超时",
                    "description": "作业启动缓慢，JM 资源不足 🚀🔥",
                    "recommendation": "增加内存",
                },
                {"name": "مرحبا بالعالم", "description": "\u202eRTL override עברית", "recommendation": "ok"},
                {
                    "name": "Zalgo z\u0351\u0352\u0353",
                    "description": "e\u0301" * 2000,
                    "recommendation": "👩\u200d💻",
                },
                {"name": "boundary", "description": boundary, "recommendation": ""},
            ]
        },
    }


PAYLOADS: dict[str, dict[str, Any]] = {
    "api_example": _api_example(),
    "empty": {},
    "sparse_autopilot": {"symptoms": {"autopilot": _symptom(1)}},
    "huge": _huge(),
    "hostile": _hostile(),
    "non_ascii": _non_ascii(),
    "unknown_risk": {
        "riskLevel": "RISK_LEVEL_CRITICAL",
        "healthScore": 100,
        "symptoms": {"state": [_symptom(1)]},
    },
}


def target(**over: Any) -> Target:
    base = {
        "workspace": "a14bd5d90a1234",
        "namespace": "default-namespace",
        "deployment_id": "737d0921-c5ac-47fc-9ba9-07a1e0b41234",
        "job_id": "5af678c0-7db0-4650-94c2-d2604f0a1234",
        "deployment_name": "orders-etl",
        "region": "cn-hangzhou",
    }
    return Target(**(base | over))


def run_of(payload: dict[str, Any], **target_over: Any) -> DiagnosisRun:
    return DiagnosisRun(
        target=target(**target_over), diagnosis=JobDiagnosis.model_validate(payload), diagnosed_at=NOW
    )


def _buttons(message: Message) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in blocks_to_text(message)[1]}


# --- diagnosis: valid for every payload and option ------------------------------------------------


@pytest.mark.parametrize("name", list(PAYLOADS))
@pytest.mark.parametrize("ephemeral", [True, False])
@pytest.mark.parametrize("region", ["cn-hangzhou", None])
def test_every_diagnosis_is_valid_block_kit(name, ephemeral, region):
    run = run_of(PAYLOADS[name], region=region)
    previous = Snapshot(
        risk="RISK_LEVEL_MID",
        health_score=80,
        symptoms=[SymptomKey(category="runtime", name=EVIL_TEXT), SymptomKey(category="state", name="old")],
        diagnosed_at=NOW - timedelta(hours=1),
    )
    change = compare(previous, run.snapshot())
    message = render_diagnosis(run, change=change, run_id="run-1", shared_by="U0123ABC", ephemeral=ephemeral)
    check(message, mention="<@U0123ABC>")
    check(render_diagnosis(run))


def test_api_example_shows_its_categories_and_facts():
    m = render_diagnosis(run_of(PAYLOADS["api_example"]), run_id="r1")
    check(m)
    text = _all_text(m)
    assert ":large_green_circle: Low risk · orders-etl" == m.blocks[0]["text"]["text"]
    for title in ("Startup", "Runtime", "Autopilot"):
        assert f"{title}* · 1" in text
    for absent in ("Troubleshooting", "State", "Other*"):
        assert absent not in text
    assert "Increase the JobManager memory from 1 GiB to 4 GiB" in text
    assert "not reported" in text  # the example has no health score
    assert "`5af678c0-7db0-4650-94c2-d2604f0a1234`" in text
    assert "`default-namespace`" in text and "`a14bd5d90a1234`" in text
    assert "orders-etl `737d0921-c5ac-47fc-9ba9-07a1e0b41234`" in text
    # diagnoseTime (epoch ms) wins over our own clock.
    assert "<!date^1740389560^" in text
    assert "3 symptoms" in m.text


def test_our_clock_is_used_when_the_service_sends_no_time():
    m = render_diagnosis(run_of({"riskLevel": "RISK_LEVEL_LOW"}))
    assert f"<!date^{int(NOW.timestamp())}^" in _all_text(m)


def test_empty_diagnosis_says_so():
    m = render_diagnosis(run_of({}))
    check(m)
    text = _all_text(m)
    assert "No symptoms found" in text
    assert m.blocks[0]["text"]["text"].startswith(":white_circle: Risk not reported")
    assert "health not reported" in m.text
    assert not any(str(b.get("block_id", "")).startswith(("sym.", "cat.")) for b in m.blocks)


def test_sparse_payload_shows_only_autopilot():
    m = render_diagnosis(run_of(PAYLOADS["sparse_autopilot"]))
    cats = [b["block_id"] for b in m.blocks if str(b.get("block_id", "")).startswith("cat.")]
    assert cats == ["cat.autopilot"]
    assert "No symptoms found" not in _all_text(m)


def test_unknown_risk_level_is_shown_verbatim():
    m = render_diagnosis(run_of(PAYLOADS["unknown_risk"]))
    assert m.blocks[0]["text"]["text"].startswith(":grey_question: RISK_LEVEL_CRITICAL risk")
    assert m.attachments[0]["color"] == "#8e44ad"


@pytest.mark.parametrize("big", [10_000, 20])
def test_flood_is_summarised_with_the_right_count_and_buttons_survive(big):
    """300 symptoms of 10k characters, or of 20: the total text binds, or the block count."""
    payload = json.loads(json.dumps(PAYLOADS["huge"]).replace("x" * 10_000, "x" * big))
    run = run_of(payload)
    previous = Snapshot(
        risk="RISK_LEVEL_MID", health_score=80, symptoms=[], diagnosed_at=NOW - timedelta(hours=1)
    )
    m = render_diagnosis(run, change=compare(previous, run.snapshot()), run_id="r1", shared_by="U0123ABC")
    check(m, mention="<@U0123ABC>")
    assert _text_total(m) <= 9000
    shown = [b for b in m.blocks if str(b.get("block_id", "")).startswith("sym.")]
    assert [b["block_id"] for b in shown] == [f"sym.{i}" for i in range(len(shown))]
    summary = [b for b in m.blocks if b.get("block_id") == "overflow"]
    assert len(summary) == 1
    text = summary[0]["elements"][0]["text"]
    assert text == f"…and {300 - len(shown)} more symptoms — see the Flink console for all"
    assert shown[0]["text"]["text"].startswith("*Symptom 0 xxx")
    if big == 10_000:
        # Long texts are cut with an ellipsis; 10k descriptions never reach Slack whole, and a
        # few of them already fill the message.
        assert all("…" in b["text"]["text"] for b in shown)
        assert all(len(b["text"]["text"]) < 3000 for b in shown)
        assert 1 <= len(shown) <= 5 and len(m.blocks) < 20
    else:
        assert len(m.blocks) == 50 and _text_total(m) < 6000
    ids = [b.get("block_id") for b in m.blocks]
    # What the message is about survives: header, facts, what changed, buttons, who shared it.
    assert m.blocks[0]["type"] == "header"
    assert {"facts", "change", "actions", "shared_by"} <= set(ids)
    assert ids[-2:] == ["actions", "shared_by"]
    assert "*Symptoms*\n300" in _all_text(m)
    assert "300 symptoms" in m.text
    assert "300 symptoms" in m.attachments[0]["blocks"][0]["elements"][0]["text"]


def test_hostile_text_is_shown_not_parsed():
    run = run_of(PAYLOADS["hostile"], deployment_name=EVIL_TEXT, namespace="ns`<!here>`", job_id="j`<@U123>`")
    m = render_diagnosis(run, run_id="r1", shared_by="<!channel>")
    kwargs = check(m)
    text = _all_text(m)
    assert "&lt;!channel&gt;" in text and "&lt;@U123&gt;" in text and "&lt;http://evil|click&gt;" in text
    assert "&amp;lt;!everyone&amp;gt;" in text  # already-escaped text stays visibly escaped
    assert "{{ 7*7 }}" in text and "{% if true %}jinja{% endif %}" in text and "49" not in text
    assert '"quote" \\backslash\\' in text
    # Ids in code spans cannot close the span early.
    assert "`ns\u02cb&lt;!here&gt;\u02cb`" in text
    assert "`j\u02cb&lt;@U123&gt;\u02cb`" in text
    # Symptom names are bold spans whose own asterisks are neutralised.
    sym = next(b for b in m.blocks if b.get("block_id") == "sym.0")
    first_line = sym["text"]["text"].split("\n", 1)[0]
    assert first_line.startswith("*") and first_line.endswith("*") and first_line.count("*") == 2
    # A shared_by that is not a Slack user id is shown as text, not turned into a mention.
    assert "Shared by &lt;!channel&gt;" in text
    assert "<@" not in json.dumps(kwargs)


def test_non_ascii_survives_and_cuts_on_character_boundaries():
    m = render_diagnosis(run_of(PAYLOADS["non_ascii"]))
    check(m)
    text = _all_text(m)
    assert (
        "检查点超时" in text and "作业启动缓慢" in text and "مرحبا بالعالم" in text and "👩\u200d💻" in text
    )
    text.encode("utf-8")  # no lone surrogates anywhere
    boundary = next(b for b in m.blocks if b.get("text", {}).get("text", "").startswith("*boundary*"))
    desc = boundary["text"]["text"].split("\n")[1]
    assert desc == "a" * 1498 + "…"  # the emoji did not fit whole, so it is left out whole
    zalgo = next(b for b in m.blocks if b.get("text", {}).get("text", "").startswith("*Zalgo"))
    cut_desc = zalgo["text"]["text"].split("\n")[1]
    assert cut_desc.endswith("…")
    assert unicodedata.combining(cut_desc[-2])  # ends on a whole "é", not a bare "e"


# --- buttons -----------------------------------------------------------------------------------


def test_rerun_value_round_trips_to_the_target():
    run = run_of(PAYLOADS["api_example"])
    b = _buttons(render_diagnosis(run, run_id="run-42"))
    back = parse_action_value(b["rerun_diagnosis"]["value"])
    assert back.target == run.target
    assert back.run == "run-42"
    assert parse_action_value(b["share_diagnosis"]["value"]) == back


def test_rerun_value_with_hostile_and_huge_names_stays_valid():
    t = target(deployment_name="名" * 3000, namespace='ns"<&>\\')
    value = action_value(t, "r")
    assert value is not None and len(value) <= 2000
    back = parse_action_value(value)
    assert back.target == t.model_copy(update={"deployment_name": None})  # the name was dropped to fit
    assert "<" not in value and ">" not in value and "&" not in value
    small = target(deployment_name='a "<b>" & c')
    assert parse_action_value(action_value(small, "r")).target == small


def test_parse_action_value_refuses_otherstrings():
    for bad in ("", "{}", "[1]", "not json", '{"ws": 1}'):
        with pytest.raises(ValueError):
            parse_action_value(bad)


def test_share_only_when_ephemeral():
    run = run_of(PAYLOADS["api_example"])
    assert "share_diagnosis" in _buttons(render_diagnosis(run, ephemeral=True))
    assert "share_diagnosis" not in _buttons(render_diagnosis(run, ephemeral=False))
    assert "rerun_diagnosis" in _buttons(render_diagnosis(run, ephemeral=False))


def test_console_link_only_with_a_region():
    with_region = _buttons(render_diagnosis(run_of({}, region="cn-shanghai")))
    assert (
        with_region["open_console"]["url"]
        == "https://realtime-compute.console.aliyun.com/regions/cn-shanghai"
    )
    assert "open_console" not in _buttons(render_diagnosis(run_of({}, region=None)))


def test_shared_by_mentions_a_real_user_id():
    m = render_diagnosis(run_of({}), shared_by="W0ABC123", ephemeral=False)
    check(m, mention="<@W0ABC123>")
    assert "Shared by <@W0ABC123>" in _all_text(m)
    for not_an_id in ("u123", "U1", "U123 x", "B0123"):
        assert "<@" not in _all_text(render_diagnosis(run_of({}), shared_by=not_an_id))


# --- change since the previous run --------------------------------------------------------------


def _change(**over: Any) -> Change:
    base: dict[str, Any] = {
        "previous_at": NOW - timedelta(hours=2),
        "risk_before": "RISK_LEVEL_LOW",
        "risk_after": "RISK_LEVEL_HIGH",
        "direction": "up",
        "health_before": 72,
        "health_after": 45,
        "appeared": [SymptomKey(category="runtime", name="Backpressure <!channel>")],
        "cleared": [SymptomKey(category="state", name="Checkpoint *slow*")],
    }
    return Change(**(base | over))


def _change_text(m: Message) -> str:
    return next(b for b in m.blocks if b.get("block_id") == "change")["text"]["text"]


def test_change_shows_risk_up_health_delta_and_symptom_names():
    m = render_diagnosis(run_of({}), change=_change())
    check(m)
    t = _change_text(m)
    assert f"<!date^{int((NOW - timedelta(hours=2)).timestamp())}^" in t
    assert ":arrow_up: Risk up: Low → *High*" in t
    assert "Health: 72 → 45 (-27)" in t
    assert "Appeared (1): *Backpressure &lt;!channel&gt;*" in t
    assert "Cleared (1): *Checkpoint ∗slow∗*" in t


def test_change_shows_risk_down_and_positive_delta():
    c = _change(risk_before="RISK_LEVEL_HIGH", risk_after="RISK_LEVEL_MID", direction="down", health_after=90)
    t = _change_text(render_diagnosis(run_of({}), change=c))
    assert ":arrow_down: Risk down: High → *Mid*" in t
    assert "(+18)" in t


def test_change_caps_long_name_lists():
    many = [SymptomKey(category="runtime", name=f"s{i}") for i in range(25)]
    t = _change_text(render_diagnosis(run_of({}), change=_change(appeared=many, cleared=[])))
    assert "Appeared (25):" in t and "…and 15 more" in t and "*s9*" in t and "*s10*" not in t
    assert "Cleared" not in t


def test_change_says_when_nothing_changed():
    c = _change(risk_after="RISK_LEVEL_LOW", direction="same", health_after=72, appeared=[], cleared=[])
    assert "Nothing changed." in _change_text(render_diagnosis(run_of({}), change=c))
    assert not any(b.get("block_id") == "change" for b in render_diagnosis(run_of({})).blocks)


# --- the other messages ----------------------------------------------------------------------------


def test_progress_escapes_what():
    m = render_progress("job <!channel> `x`")
    check(m)
    assert "Diagnosing job &lt;!channel&gt; `x`: the answer follows below." in _all_text(m)
    # The ack stays above the answer in Slack: it says where the answer goes, not "…" forever.
    shared = render_progress("job y", share=True)
    assert "Diagnosing job y: the answer will be posted to this channel." in _all_text(shared)


def test_error_with_ref_and_hint():
    m = render_error("Job `x` was not found in <cn-hangzhou>.", ref="abc123", hint="Check the <id>.")
    check(m)
    text = _all_text(m)
    assert m.blocks[0]["text"]["text"] == ":warning: Job `x` was not found in &lt;cn-hangzhou&gt;."
    assert "ref `abc123`" in text and ":bulb: Check the &lt;id&gt;." in text
    bare = render_error("")
    check(bare)
    assert [b["block_id"] for b in bare.blocks] == ["error"]


def test_usage_names_the_mistake_first_and_documents_every_sub_command():
    m = render_usage("unknown option `--frobnicate <@U123>`")
    check(m)
    assert m.blocks[0]["block_id"] == "mistake"
    assert m.blocks[0]["text"]["text"] == ":warning: unknown option `--frobnicate &lt;@U123&gt;`"
    text = _all_text(m)
    for sub in (
        "job &lt;job-id&gt; [--namespace N] [--workspace W] [--share]",
        "deployment &lt;name-or-id&gt; [--namespace N] [--workspace W] [--share]",
        "defaults [namespace=N] [workspace=W]",
        "watch deployment &lt;name-or-id&gt; [--min-risk mid|high] [--every 5m]",
        "watch namespace &lt;ns&gt;",
        "unwatch deployment &lt;name-or-id&gt;",
        "unwatch namespace &lt;ns&gt;",
        "/flinkdiag watches`",
        "report daily HH:MM [tz]",
        "report weekdays HH:MM [tz]",
        "report off",
        "report now",
        "/flinkdiag help`",
    ):
        assert sub in text, sub
    plain = render_usage()
    check(plain)
    assert plain.blocks[0]["block_id"] == "usage"


def test_defaults_show_channel_values_and_configured_fallbacks():
    m = render_defaults(
        {"namespace": "team-a", "workspace": None},
        {"workspace": "ws-<1>", "namespaces": ["a", "b`c"], "region": None, "watching": True},
    )
    check(m)
    text = message_to_text(m)
    assert "*Namespace*: `team-a`" in text
    assert "*Workspace*: _not set_" in text
    assert "*Workspace*: `ws-<1>`" in text  # escaped in Slack, decoded for the console
    assert "*Namespaces*: `a`, `b\u02cbc`" in text
    assert "*Region*: _not set_" in text and "*Watching*: yes" in text
    check(render_defaults({}, {}))


def test_job_choice_offers_one_button_per_match():
    candidates = [target(namespace=f"ns-{i}", deployment_name="orders <!here>") for i in range(3)]
    m = render_job_choice("Deployment `orders` matches 3 deployments; pick one.", candidates, share=True)
    check(m)
    buttons = blocks_to_text(m)[1]
    assert [b["action_id"] for b in buttons] == ["diagnose_choice"] * 3
    for b, t in zip(buttons, candidates, strict=True):
        back = parse_action_value(b["value"])
        assert back.target == t and back.share is True
    assert "*orders &lt;!here&gt;* in namespace `ns-1`" in _all_text(m)


def test_job_choice_flood_is_summarised():
    m = render_job_choice("many", [target(namespace=f"ns-{i}") for i in range(80)])
    check(m)
    shown = sum(1 for b in m.blocks if str(b.get("block_id", "")).startswith("choice."))
    assert 0 < shown < 49  # the total text binds before the block count
    assert f"…and {80 - shown} more matches — add `--namespace` to narrow it down" in _all_text(m)


def test_render_text_escapes():
    m = render_text("Shared <!channel> & done")
    check(m)
    assert m.blocks[0]["text"]["text"] == "Shared &lt;!channel&gt; &amp; done"
    assert m.text == "Shared &lt;!channel&gt; &amp; done"


# --- text view for the console ----------------------------------------------------------------


def test_blocks_to_text_numbers_buttons_and_decodes_markup():
    run = run_of(PAYLOADS["api_example"])
    m = render_diagnosis(run, run_id="r1", shared_by="U0123ABC")
    text, buttons = blocks_to_text(m)
    assert "== :large_green_circle: Low risk · orders-etl ==" in text
    assert "[1] :repeat: Re-run diagnosis" in text and "[2] :mega: Share to channel" in text
    assert (
        f"[3] :link: Open in console (https://realtime-compute.console.aliyun.com/regions/{run.target.region})"
        in text
    )
    assert "*Diagnosed*: 2025-02-24 09:32 UTC" in text
    assert "Shared by @U0123ABC" in text
    assert [b["action_id"] for b in buttons] == ["rerun_diagnosis", "share_diagnosis", "open_console"]
    assert set(buttons[0]) == {"action_id", "value", "text", "url", "block_id"}
    assert buttons[0]["block_id"] == "actions"
    hostile, _ = blocks_to_text(render_text("a <b> & c"))
    assert hostile == "a <b> & c"
    assert "[1]" not in message_to_text(m)
    assert message_to_text(m.to_slack()) == message_to_text(m)


# --- templates --------------------------------------------------------------------------------


def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(body, encoding="utf-8")


def test_operator_folder_overrides_one_template_and_the_rest_stay_packaged(tmp_path):
    _write(
        tmp_path,
        "text.json.j2",
        '{"text": {{ text | tojson }}, "blocks": [{"type": "section", "block_id": "custom",'
        ' "text": {"type": "mrkdwn", "text": {{ body | tojson }}}}]}',
    )
    r = Renderer(str(tmp_path))
    custom = r.render_text("hi <!here>")
    check(custom)
    assert custom.blocks == [
        {"type": "section", "block_id": "custom", "text": {"type": "mrkdwn", "text": "hi &lt;!here&gt;"}}
    ]
    packaged = r.render_error("boom")
    assert packaged.blocks == render_error("boom").blocks
    assert r.render_diagnosis(run_of({})).blocks == render_diagnosis(run_of({})).blocks


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"text": {{ no_such_variable | tojson }}, "blocks": []}',
        '{"text": "x", "blocks": "nope"}',
        '{"text": "x", "blocks": [{"type": "no_such_block"}]}',
        "{% if %}",
    ],
)
def test_broken_operator_template_falls_back_to_the_packaged_one(tmp_path, caplog, body):
    _write(tmp_path, "error.json.j2", body)
    with caplog.at_level(logging.WARNING, logger="bot.slack.render"):
        m = Renderer(str(tmp_path)).render_error("boom")
    check(m)
    assert m.blocks == render_error("boom").blocks
    assert "template_fallback kind=error" in caplog.text


def test_operator_template_output_is_still_held_to_the_limits(tmp_path):
    _write(
        tmp_path,
        "text.json.j2",
        '{"text": {{ text | tojson }}, "blocks": [{% for i in range(80) %}{% if i %},{% endif %}'
        '{"type": "section", "text": {"type": "mrkdwn", "text": {{ body | tojson }}}}{% endfor %}]}',
    )
    m = Renderer(str(tmp_path)).render_text("y" * 5000)
    check(m)
    assert len(m.blocks) == 50
    assert _text_total(m) <= 9000
    # Sections are no list items: the tail goes for the count, the rest is cut for the total.
    assert m.blocks[-1]["elements"][0]["text"] == "…and 31 more blocks (message too long for Slack)"
    assert all(b["text"]["text"].startswith("yyy") and b["text"]["text"].endswith("…") for b in m.blocks[:-1])


def test_a_missing_operator_folder_just_uses_the_packaged_templates(tmp_path):
    m = Renderer(str(tmp_path / "nope")).render_text("hi")
    assert m.blocks == render_text("hi").blocks


def _template_files() -> list[Path]:
    return sorted(PACKAGED_TEMPLATES.glob("*.json.j2"))


def test_every_message_kind_has_a_template():
    names = {p.name for p in _template_files()}
    kinds = {"diagnosis", "progress", "error", "usage", "defaults", "job_choice", "text"}
    assert {f"{k}.json.j2" for k in kinds} <= names


@pytest.mark.parametrize("path", _template_files(), ids=lambda p: p.name)
def test_templates_only_loop_branch_and_place_values(path):
    """Escaping, cutting and composing belong in Python; templates must not compute."""
    tree = Environment().parse(path.read_text(encoding="utf-8"))
    forbidden = (
        nodes.Concat,
        nodes.BinExpr,
        nodes.Assign,
        nodes.AssignBlock,
        nodes.FilterBlock,
        nodes.CondExpr,
    )
    assert not list(tree.find_all(forbidden)), path.name
    filters = {f.name for f in tree.find_all(nodes.Filter)}
    assert filters <= {"tojson"}, filters
    # Every value printed is either a macro call or passed through tojson.
    for out in tree.find_all(nodes.Output):
        for child in out.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            assert isinstance(child, nodes.Filter | nodes.Call), (path.name, child)
