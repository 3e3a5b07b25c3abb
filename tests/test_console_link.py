"""The "Open in console" link follows FLINKDIAG_CONSOLE_URL, and is left out when it can't be filled."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from e2e import diagnose_and_wait, make_settings, running_stack
from procs import FLINKDIAG, clean_env

from bot.diagnosis.report import DiagnosisRun, Target
from bot.flink.models import JobDiagnosis
from bot.slack.driver import buttons_of
from bot.slack.render import Renderer, TemplateProblem

DEPLOYMENT_PAGE = (
    "https://vvp.console.aliyun.com/web/{region}/zh/#/workspaces/{workspace}/namespaces/{namespace}"
    "/operations/stream/{deployment_id}"
)


def _run(**over: Any) -> DiagnosisRun:
    base: dict[str, Any] = {
        "workspace": "ws-1",
        "namespace": "team a/b",
        "deployment_id": "737d0921-c5ac-47fc-9ba9-07a1e0b41234",
        "job_id": "5af678c0-7db0-4650-94c2-d2604f0a1234",
        "deployment_name": "orders etl?x=1&y",
        "region": "cn-hangzhou",
    }
    return DiagnosisRun(
        target=Target(**(base | over)),
        diagnosis=JobDiagnosis.model_validate({}),
        diagnosed_at=datetime(2025, 2, 24, tzinfo=UTC),
    )


def _link(renderer: Renderer, run: DiagnosisRun) -> str | None:
    urls = [
        el.get("url")
        for block in renderer.render_diagnosis(run).blocks
        if block.get("type") == "actions"
        for el in block["elements"]
        if el.get("action_id") == "open_console"
    ]
    return urls[0] if urls else None


def test_the_default_is_the_documented_regional_entry_page():
    assert _link(Renderer(), _run()) == "https://realtime-compute.console.aliyun.com/regions/cn-hangzhou"
    assert _link(Renderer(), _run(region=None)) is None


def test_a_template_is_filled_with_url_quoted_values():
    r = Renderer(console_url=DEPLOYMENT_PAGE + "?name={deployment_name}&job={job_id}")
    assert _link(r, _run()) == (
        "https://vvp.console.aliyun.com/web/cn-hangzhou/zh/#/workspaces/ws-1/namespaces/team%20a%2Fb"
        "/operations/stream/737d0921-c5ac-47fc-9ba9-07a1e0b41234"
        "?name=orders%20etl%3Fx%3D1%26y&job=5af678c0-7db0-4650-94c2-d2604f0a1234"
    )


def test_no_link_when_a_placeholder_has_no_value():
    r = Renderer(console_url="https://console.example/{deployment_name}/{region}")
    assert _link(r, _run(deployment_name=None)) is None
    assert _link(r, _run(region=None)) is None
    assert _link(r, _run()) == "https://console.example/orders%20etl%3Fx%3D1%26y/cn-hangzhou"
    # A template without placeholders is always filled; an empty one turns the link off.
    assert (
        _link(Renderer(console_url="https://console.example/"), _run(region=None))
        == "https://console.example/"
    )
    assert _link(Renderer(console_url=""), _run()) is None


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("https://console.example/{cluster}", "unknown placeholder {cluster}"),
        ("https://console.example/{region!r}", "unknown placeholder {region}"),
        ("https://console.example/{region", "is not a template"),
        ("http://console.example/{region}", "must start with https://"),
        ("javascript:alert(1)", "must start with https://"),
    ],
)
def test_a_template_that_cannot_work_is_refused_up_front(template, says):
    with pytest.raises(TemplateProblem, match="FLINKDIAG_CONSOLE_URL") as e:
        Renderer(console_url=template)
    assert says in str(e.value)


async def test_the_slash_command_answer_links_through_the_setting(tmp_path):
    settings = make_settings(region="cn-hangzhou", console_url=DEPLOYMENT_PAGE)
    async with running_stack(tmp_path, settings=settings) as stack:
        message = await diagnose_and_wait(stack, "deployment orders-etl")
        [link] = [b for b in buttons_of(message) if b["action_id"] == "open_console"]
        d = next(d for d in stack.sim.fleet_summary() if d["name"] == "orders-etl")
        assert link["url"] == DEPLOYMENT_PAGE.format(
            region="cn-hangzhou",
            workspace=d["workspace"],
            namespace=d["namespace"],
            deployment_id=d["deploymentId"],
        )


@pytest.mark.parametrize("command", ["console", "serve"])
def test_a_bad_template_stops_start_up_with_one_line(tmp_path, command):
    env = clean_env(tmp_path, FLINKDIAG_CONSOLE_URL="https://console.example/{cluster}")
    done = subprocess.run(
        [*FLINKDIAG, command], input="", capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "flinkdiag: cannot start: FLINKDIAG_CONSOLE_URL: unknown placeholder {cluster}; use {region}, "
        "{workspace}, {namespace}, {deployment_id}, {deployment_name}, {job_id}"
    )
