"""The outage note renders as valid Block Kit within Slack's limits, escaped, however big the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_render_messages import check

from bot.slack.outage_view import checking_again_context, outage_context, outage_over_context
from bot.slack.render import Renderer
from bot.watch.model import OutageNotice, Watch, WatchTarget
from bot.watch.outage import OutageAction, OutageReason, OutageState
from bot.watch.policy import TargetState

NOW = datetime(2025, 2, 24, 9, 0, tzinfo=UTC)
EVIL = "<!channel> <@U1> <http://x|y> & `tick` *star*"


def notice(n: int, name: str = "dep", kind: str = "namespace") -> OutageNotice:
    w = Watch(
        id=1,
        team_id="T1",
        channel_id="C1",
        kind=kind,  # type: ignore[arg-type]
        workspace=EVIL,
        namespace=EVIL,
        deployment_id="d0",
        deployment_name=EVIL,
        min_risk="RISK_LEVEL_MID",
        interval_seconds=60,
    )
    state = TargetState(
        failure_streak=4,
        checks_since_failure=0,
        last_error_kind=EVIL,
        last_success_at=NOW - timedelta(hours=1),
    )
    targets = [
        WatchTarget(
            id=i,
            watch_id=1,
            team_id="T1",
            channel_id="C1",
            workspace="ws",
            namespace="ns",
            deployment_id=f"d{i}",
            deployment_name=f"{name}-{i}",
            min_risk="RISK_LEVEL_MID",
            interval_seconds=60,
            state=state,
        )
        for i in range(n)
    ]
    outage = OutageState(
        since=NOW - timedelta(minutes=10), note_ts="1.1", listed=tuple(t.deployment_id for t in targets)
    )
    return OutageNotice(
        watch=w,
        reason=OutageReason.CANNOT_CHECK,
        action=OutageAction.POST_NOTE,
        previous=outage,
        state=outage,
        listed=targets,
        error=EVIL,
    )


@pytest.mark.parametrize("n", [1, 12, 2000])
@pytest.mark.parametrize("view", [outage_context, outage_over_context, checking_again_context])
def test_outage_messages_are_valid_and_escaped(view, n):
    m = Renderer().render("outage", view(notice(n, name=EVIL + " " + "名" * 200), NOW))
    check(m)
    assert "<!channel" not in m.text


def test_a_long_list_is_cut_with_a_count_of_the_rest():
    m = Renderer().render("outage", outage_context(notice(2000), NOW))
    check(m)
    text = " ".join(b["text"]["text"] for b in m.blocks if b["type"] == "section")
    assert "dep-0" in text and "more deployments" in text
    assert m.text.startswith("Can't check 2000 deployments in namespace")
