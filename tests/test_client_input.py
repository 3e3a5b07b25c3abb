"""Ids and names that would change the request path are refused before anything is sent."""

from __future__ import annotations

import pytest
from flink_helpers import NS, WS, sim_and_client

from bot.flink.errors import InvalidInput

BAD = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("a/b", id="slash"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a?b=1", id="question"),
    pytest.param("a#frag", id="hash"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\rb", id="cr"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("a\ud800b", id="lone-surrogate"),
    pytest.param("x" * 300, id="too-long"),
]

# operation -> (call with the bad value in `field`, the field's name in the message)
CASES = {
    "workspace": lambda c, v: c.get_job(v, NS, "job-1"),
    "namespace": lambda c, v: c.list_deployments(WS, v),
    "job id": lambda c, v: c.get_job(WS, NS, v),
    "deployment id": lambda c, v: c.get_deployment(WS, NS, v),
    "deployment name": lambda c, v: c.get_deployments_by_name(WS, NS, v),
}


@pytest.mark.parametrize("field", sorted(CASES))
@pytest.mark.parametrize("value", BAD)
async def test_bad_value_is_refused_before_sending(field: str, value: str) -> None:
    async with sim_and_client() as (sim, client):
        with pytest.raises(InvalidInput) as info:
            await CASES[field](client, value)
        assert client.limiter_stats().started == 0
    assert not sim.calls
    assert f"The {field} " in info.value.user_message


async def test_every_path_parameter_of_the_diagnosis_is_checked() -> None:
    async with sim_and_client() as (sim, client):
        for args in [
            ("w/s", NS, "d", "j"),
            (WS, "n/s", "d", "j"),
            (WS, NS, "d/..", "j"),
            (WS, NS, "d", "../j"),
        ]:
            with pytest.raises(InvalidInput):
                await client.get_job_diagnosis(*args)
        with pytest.raises(InvalidInput):
            await client.list_jobs(WS, NS, "../../x")
        with pytest.raises(InvalidInput):
            await client.list_deployments(WS, NS, name="a\nb")
    assert not sim.calls


async def test_length_limits_differ_for_ids_and_names() -> None:
    async with sim_and_client() as (sim, client):
        with pytest.raises(InvalidInput, match="too long"):
            await client.get_job(WS, NS, "j" * 129)
        # 200 characters is a fine name, so it is asked for (and simply not found).
        assert await client.get_deployments_by_name(WS, NS, "n" * 200) == []
    assert sim.calls == {"GetDeploymentsByName": 1}


async def test_non_string_is_refused() -> None:
    async with sim_and_client() as (sim, client):
        with pytest.raises(InvalidInput):
            await client.get_job(WS, NS, None)  # type: ignore[arg-type]
    assert not sim.calls


async def test_the_message_does_not_echo_control_characters() -> None:
    async with sim_and_client() as (_sim, client):
        with pytest.raises(InvalidInput) as info:
            await client.get_job(WS, NS, "job\n<!channel>")
    assert "\n" not in info.value.user_message
    assert "<!channel>" not in info.value.user_message
