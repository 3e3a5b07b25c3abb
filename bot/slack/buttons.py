"""Button values: what a Re-run / Share / choice / Snooze / Unwatch button carries back to the
bot, as compact JSON within Slack's 2000 characters, and their parsing."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.diagnosis.report import Target
from bot.slack import blocks as bk

log = logging.getLogger(__name__)


class ActionValue(BaseModel):
    """What a Re-run / Share / choice button carries back to the bot."""

    target: Target
    run: str | None = None
    share: bool = False
    # Re-run follows the deployment to its current job (the message came from `deployment …`)
    follow: bool = False


def _compact_json(data: dict[str, Any]) -> str:
    s = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Slack entity-encodes `&<>` in payloads it echoes back; \u escapes keep the value identical
    # on the way back and keep mention syntax out of the message JSON.
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def action_value(
    target: Target, run_id: str | None = None, *, share: bool = False, follow: bool = False
) -> str | None:
    """A button value naming `target` (<= 2000 chars), or None when even the bare ids don't fit.

    The deployment name goes first when space runs short: the ids alone are enough to re-run.
    """
    full: dict[str, Any] = {
        "ws": target.workspace,
        "ns": target.namespace,
        "dep": target.deployment_id,
        "job": target.job_id,
        "name": target.deployment_name,
        "region": target.region,
        "run": run_id,
        "share": True if share else None,
        "follow": True if follow else None,
    }
    full = {k: v for k, v in full.items() if v is not None}
    for drop in ((), ("name",), ("name", "run")):
        value = _compact_json({k: v for k, v in full.items() if k not in drop})
        if len(value) <= bk.MAX_BUTTON_VALUE:
            return value
    log.warning("button_value_too_long deployment_id=%s", target.deployment_id[:80])
    return None


def parse_action_value(value: str) -> ActionValue:
    """Inverse of `action_value`. Raises ValueError on anything else."""
    try:
        d = json.loads(value)
        target = Target(
            workspace=d["ws"],
            namespace=d["ns"],
            deployment_id=d["dep"],
            job_id=d["job"],
            deployment_name=d.get("name"),
            region=d.get("region"),
        )
        return ActionValue(
            target=target,
            run=d.get("run"),
            share=bool(d.get("share", False)),
            follow=bool(d.get("follow", False)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
        raise ValueError("not a flinkdiag button value") from e


def target_value(target_id: int) -> str:
    """The value of the Snooze and Unwatch buttons: the watched target's id, compact JSON."""
    return _compact_json({"t": target_id})


def parse_target_value(value: str) -> int:
    """Inverse of `target_value`. Raises ValueError on anything else."""
    try:
        t = json.loads(value)["t"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError("not a flinkdiag target button value") from e
    if isinstance(t, bool) or not isinstance(t, int):
        raise ValueError("not a flinkdiag target button value")
    return t
