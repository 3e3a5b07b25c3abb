"""Entry points: `flinkdiag serve | console | sim | diagnose`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.config import Settings
from bot.logs import setup_logging

log = logging.getLogger("flinkdiag")


def _settings() -> Settings:
    """Read the settings once; a bad value stops the process (exit 2) naming its variable."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(_setting_problem(err) for err in e.errors())
    except SettingsError as e:  # a value pydantic-settings could not even decode
        problems = str(e)
    print(f"flinkdiag: invalid settings: {problems}", file=sys.stderr)
    raise SystemExit(2)


def _setting_problem(err: Any) -> str:
    # Users set environment variables, not fields: name the variable, not `max_concurrency`.
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"]:
        return msg
    name = str(err["loc"][0])
    field = Settings.model_fields.get(name)
    if field is not None:
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        name = str(choices[0]) if choices else (Settings.model_config.get("env_prefix") or "") + name.upper()
    return f"{name}: {msg}"


def _message_problem(settings: Settings) -> str | None:
    """Load every packaged template and check the console link's template, before anything starts;
    the renderer keeps them (loaded once per process)."""
    from bot.slack.render import Renderer, TemplateProblem

    try:
        Renderer(settings.template_dir, console_url=settings.console_url)
    except TemplateProblem as e:
        return str(e)
    return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flinkdiag", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run the Slack app (Socket Mode with SLACK_APP_TOKEN, else HTTP on $PORT)")
    sub.add_parser("console", help="chat with the bot locally; no accounts needed")
    s = sub.add_parser("sim", help="run the Flink OpenAPI simulator")
    s.add_argument("--port", type=int, default=8081)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--scenario", help="fleet scenario file (JSON)")
    d = sub.add_parser("diagnose", help="diagnose one job in the terminal")
    d.add_argument("job_id")
    d.add_argument("--namespace")
    d.add_argument("--workspace")
    d.add_argument("--format", choices=["text", "json"], default="text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "sim":
        from bot.flink import sim

        setup_logging("INFO")
        rest = ["--port", str(args.port), "--host", args.host]
        if args.scenario:
            rest += ["--scenario", args.scenario]
        return sim.main(rest) or 0
    settings = _settings()
    level = settings.log_level
    if args.cmd in {"console", "diagnose"} and "log_level" not in settings.model_fields_set:
        # Terminal commands: info logs would drown what the person came for, unless asked for.
        level = "WARNING"
    setup_logging(level, settings.log_format)
    if args.cmd in {"console", "serve"} and (problem := _message_problem(settings)):
        print(f"flinkdiag: cannot start: {problem}", file=sys.stderr)
        return 2
    if args.cmd == "console":
        from bot.console import run_console

        return asyncio.run(run_console(settings))
    if args.cmd == "diagnose":
        return asyncio.run(_diagnose(settings, args))
    if args.cmd == "serve":
        from bot.serve import serve

        return asyncio.run(serve(settings))
    return 2  # pragma: no cover


async def _diagnose(settings: Settings, args: argparse.Namespace) -> int:
    from bot.commands import UsageError, _check_id
    from bot.diagnosis.resolve import ScopeMissing, find_job, pick_scope
    from bot.diagnosis.resolve import diagnose as run_diagnosis
    from bot.diagnosis.text import format_run
    from bot.flink.client import FlinkClient
    from bot.flink.credentials import DefaultChainCredentials, StaticCredentials
    from bot.flink.errors import FlinkError

    try:
        _check_id(args.job_id, "job id")
    except UsageError as e:
        print(f"flinkdiag: {e}", file=sys.stderr)
        return 2
    sim = None
    credentials = None
    if settings.base_url is None:
        from bot.flink.sim import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Simulator
        from bot.local import sim_settings

        sim = Simulator()
        await sim.start()
        settings = sim_settings(settings, sim)
        credentials = StaticCredentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
        print(
            f"No FLINKDIAG_ENDPOINT or FLINKDIAG_REGION set: using the built-in simulator at {sim.base_url}.",
            file=sys.stderr,
        )
    try:
        scope = pick_scope(
            workspace=args.workspace,
            namespace=args.namespace,
            channel_workspace=None,
            channel_namespace=None,
            configured_workspace=settings.workspace,
            configured_namespaces=settings.namespaces,
            region=settings.region,
        )
    except ScopeMissing:
        # Its user_message speaks of channel defaults, which a terminal has none of.
        if sim is not None:
            await sim.stop()
        missing = [
            f"--{name} (or {env})"
            for name, env, value in (
                ("workspace", "FLINKDIAG_WORKSPACE", args.workspace or settings.workspace),
                ("namespace", "FLINKDIAG_NAMESPACES", args.namespace or settings.namespaces),
            )
            if not value
        ]
        print(f"flinkdiag: where should I look for the job? Pass {' and '.join(missing)}.", file=sys.stderr)
        return 2
    try:
        async with FlinkClient(settings, credentials or DefaultChainCredentials()) as client:
            target = await find_job(client, scope, args.job_id)
            run = await run_diagnosis(client, target)
    except FlinkError as e:
        print(f"flinkdiag: {e.user_message}", file=sys.stderr)
        log.info("diagnose failed", extra=e.log_fields())
        return 1
    finally:
        if sim is not None:
            await sim.stop()
    if args.format == "json":
        doc = {
            "target": run.target.model_dump(),
            "diagnosedAt": run.diagnosed_at.isoformat(),
            "diagnosis": run.diagnosis.to_wire(),
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(format_run(run))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
