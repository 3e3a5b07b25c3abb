"""Parsing what a user types after `/flinkdiag` into typed commands. Pure: no Slack, no I/O.

A parse failure is a `UsageError` whose message names the mistake; the Slack layer answers it
with the usage text. Ids are only checked for shape here; whether they exist is the API's call.
"""

from __future__ import annotations

import re
import shlex
from datetime import time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from bot.config import parse_duration
from bot.diagnosis.risk import MID, Risk, parse_threshold


class UsageError(ValueError):
    """The command could not be understood; `str(e)` names the mistake in one sentence."""


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Scoped(Command):
    namespace: str | None = None
    workspace: str | None = None


class HelpCommand(Command):
    kind: Literal["help"] = "help"


class JobCommand(Scoped):
    kind: Literal["job"] = "job"
    job_id: str
    share: bool = False


class DeploymentCommand(Scoped):
    kind: Literal["deployment"] = "deployment"
    ref: str
    share: bool = False


class DefaultsCommand(Command):
    kind: Literal["defaults"] = "defaults"
    namespace: str | None = None
    workspace: str | None = None

    @property
    def is_query(self) -> bool:
        return self.namespace is None and self.workspace is None


class WatchCommand(Scoped):
    kind: Literal["watch"] = "watch"
    target_kind: Literal["deployment", "namespace"]
    ref: str
    min_risk: Risk | None = MID  # None: risk alerts off
    every: timedelta | None = None
    failures: bool = True
    restarts: int | None = 3  # None: off
    min_health: int | None = None  # None: off


class UnwatchCommand(Scoped):
    kind: Literal["unwatch"] = "unwatch"
    target_kind: Literal["deployment", "namespace"]
    ref: str


class WatchesCommand(Command):
    kind: Literal["watches"] = "watches"


class ReportCommand(Command):
    kind: Literal["report"] = "report"
    mode: Literal["daily", "weekdays", "off", "now"]
    at: time | None = None
    tz: str = "UTC"


AnyCommand = (
    HelpCommand
    | JobCommand
    | DeploymentCommand
    | DefaultsCommand
    | WatchCommand
    | UnwatchCommand
    | WatchesCommand
    | ReportCommand
)

# Job and deployment ids are UUIDs in the service; we accept any short run of id characters so a
# future id format still works, and refuse what can only be a typo.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\?#]{1,256}$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def looks_like_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise UsageError(
            f"`{value[:80]}` doesn't look like a {what} (ids look like 5af678c0-7db0-4650-94c2-d2604f0a1234)"
        )
    return value


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value) or value in {".", ".."}:
        raise UsageError(f"`{value[:80]}` is not a valid {what}")
    return value


def _split(text: str) -> list[str]:
    # Slack turns quotes into curly ones on some clients; treat them as plain quotes.
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        return shlex.split(text)
    except ValueError as e:
        raise UsageError(f"I couldn't read that command ({e})") from None


def _options(
    args: list[str], allowed: set[str], flags: set[str] = frozenset()
) -> tuple[list[str], dict[str, str]]:
    """Split `--name value`, `--name=value` and bare `--flag` options from positional args."""
    positional: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") or (a.startswith("\u2014") and len(a) > 1):
            # Slack clients may turn `--` into an em dash.
            name, _, value = a.lstrip("-\u2014").partition("=")
            name = name.lower()
            if name in flags:
                opts[name] = "true"
            elif name in allowed:
                if not value:
                    if i + 1 >= len(args):
                        raise UsageError(f"`--{name}` needs a value")
                    i += 1
                    value = args[i]
                opts[name] = value
            else:
                known = ", ".join(f"--{o}" for o in sorted(allowed | flags)) or "none"
                raise UsageError(f"unknown option `{a[:40]}` (this command takes {known})")
        else:
            positional.append(a)
        i += 1
    return positional, opts


def _scope(opts: dict[str, str]) -> dict[str, str | None]:
    ns = opts.get("namespace")
    ws = opts.get("workspace")
    return {
        "namespace": _check_name(ns, "namespace") if ns is not None else None,
        "workspace": _check_name(ws, "workspace") if ws is not None else None,
    }


def _one(positional: list[str], usage: str) -> str:
    if not positional:
        raise UsageError(f"missing argument: {usage}")
    if len(positional) > 1:
        extra = " ".join(positional[1:])[:60]
        raise UsageError(f"unexpected `{extra}`: {usage}")
    return positional[0]


def parse_command(text: str, *, min_interval: timedelta | None = None) -> AnyCommand:
    """Parse the text of `/flinkdiag …`. Raises UsageError naming the mistake."""
    args = _split(text or "")
    if not args:
        return HelpCommand()
    verb, rest = args[0].lower(), args[1:]
    if verb in {"help", "-h", "--help", "?"}:
        return HelpCommand()
    if verb == "job":
        pos, opts = _options(rest, {"namespace", "workspace"}, {"share"})
        job_id = _check_id(_one(pos, "`job <job-id>`"), "job id")
        return JobCommand(job_id=job_id, share="share" in opts, **_scope(opts))
    if verb in {"deployment", "deploy", "dep"}:
        pos, opts = _options(rest, {"namespace", "workspace"}, {"share"})
        ref = _check_name(_one(pos, "`deployment <name-or-id>`"), "deployment name")
        return DeploymentCommand(ref=ref, share="share" in opts, **_scope(opts))
    if verb == "defaults":
        values: dict[str, str] = {}
        for a in rest:
            key, sep, value = a.partition("=")
            key = key.lower().lstrip("-")
            if not sep or key not in {"namespace", "workspace"}:
                raise UsageError(f"`{a[:40]}`: use `defaults namespace=N workspace=W`")
            if not value:
                raise UsageError(f"`{key}=` needs a value")
            values[key] = _check_name(value, key)
        return DefaultsCommand(**values)
    if verb in {"watch", "unwatch"}:
        return _parse_watch(verb, rest, min_interval)
    if verb in {"watches", "watching", "list"}:
        if rest:
            raise UsageError("`watches` takes no arguments")
        return WatchesCommand()
    if verb == "report":
        return _parse_report(rest)
    raise UsageError(f"I don't know the command `{verb[:40]}`")


def _parse_watch(verb: str, rest: list[str], min_interval: timedelta | None) -> WatchCommand | UnwatchCommand:
    usage = f"`{verb} deployment <name-or-id>` or `{verb} namespace <ns>`"
    if verb == "watch":
        pos, opts = _options(
            rest, {"namespace", "workspace", "min-risk", "every", "failures", "restarts", "min-health"}
        )
    else:
        pos, opts = _options(rest, {"namespace", "workspace"})
    if not pos:
        raise UsageError(f"missing argument: {usage}")
    kind = pos[0].lower()
    if kind in {"deploy", "dep"}:
        kind = "deployment"
    if kind in {"ns"}:
        kind = "namespace"
    if kind not in {"deployment", "namespace"}:
        raise UsageError(f"`{pos[0][:40]}`: {usage}")
    ref = _check_name(_one(pos[1:], usage), kind)
    scope = _scope(opts)
    if kind == "namespace":
        scope["namespace"] = ref
    if verb == "unwatch":
        return UnwatchCommand(target_kind=kind, ref=ref, **scope)  # type: ignore[arg-type]
    min_risk: Risk | None = MID
    if opts.get("min-risk", "").strip().lower() == "off":
        min_risk = None
    elif "min-risk" in opts:
        try:
            min_risk = parse_threshold(opts["min-risk"])
        except ValueError:
            raise UsageError(f"`--min-risk {opts['min-risk'][:20]}`: use mid, high or off") from None
        if min_risk.rank < MID.rank:
            raise UsageError("`--min-risk low` would alert on every healthy job: use mid, high or off")
    conditions = _conditions(opts)
    every = None
    if "every" in opts:
        try:
            every = parse_duration(opts["every"])
        except ValueError as e:
            raise UsageError(str(e)) from None
        if every.total_seconds() <= 0:
            raise UsageError("`--every` must be more than zero")
        if every > timedelta(days=7):
            raise UsageError("`--every` can be at most 7d")
        if min_interval is not None and every < min_interval:
            raise UsageError(
                f"`--every {opts['every']}` is shorter than this bot's floor of "
                f"{_fmt_duration(min_interval)} (FLINKDIAG_MIN_WATCH_INTERVAL)"
            )
    return WatchCommand(target_kind=kind, ref=ref, min_risk=min_risk, every=every, **conditions, **scope)  # type: ignore[arg-type]


def _off(value: str) -> bool:
    return value.strip().lower() in {"off", "no", "false", "0"}


def _conditions(opts: dict[str, str]) -> dict[str, object]:
    """`--failures on|off`, `--restarts N|off`, `--min-health S|off`."""
    out: dict[str, object] = {}
    if "failures" in opts:
        v = opts["failures"].strip().lower()
        if v not in {"on", "off", "yes", "no", "true", "false"}:
            raise UsageError(f"`--failures {opts['failures'][:20]}`: use on or off")
        out["failures"] = v in {"on", "yes", "true"}
    if "restarts" in opts:
        v = opts["restarts"].strip().lower()
        if v == "off":
            out["restarts"] = None
        elif v.isdigit() and 1 <= int(v) <= 1000:
            out["restarts"] = int(v)
        else:
            raise UsageError(
                f"`--restarts {opts['restarts'][:20]}`: use a number of restarts (1-1000) or off"
            )
    if "min-health" in opts:
        v = opts["min-health"].strip().lower()
        if v == "off":
            out["min_health"] = None
        elif v.isdigit() and 1 <= int(v) <= 100:
            out["min_health"] = int(v)
        else:
            raise UsageError(
                f"`--min-health {opts['min-health'][:20]}`: use a health score (1-100, e.g. 60) or off"
            )
    return out


def _parse_report(rest: list[str]) -> ReportCommand:
    usage = "`report daily HH:MM [tz]`, `report weekdays HH:MM [tz]`, `report off` or `report now`"
    if not rest:
        raise UsageError(f"missing argument: {usage}")
    mode = rest[0].lower()
    if mode in {"off", "now"}:
        if len(rest) > 1:
            raise UsageError(f"`report {mode}` takes no arguments")
        return ReportCommand(mode=mode)  # type: ignore[arg-type]
    if mode not in {"daily", "weekdays"}:
        raise UsageError(f"`{rest[0][:40]}`: {usage}")
    if len(rest) < 2:
        raise UsageError(f"missing time: `report {mode} HH:MM [tz]`")
    m = _HHMM.match(rest[1])
    if not m:
        raise UsageError(f"`{rest[1][:20]}` is not a time of day; use HH:MM, e.g. 09:30")
    tz = "UTC"
    if len(rest) > 2:
        tz = rest[2]
        if len(rest) > 3:
            raise UsageError(f"unexpected `{' '.join(rest[3:])[:40]}`: {usage}")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(
                f"`{tz[:40]}` is not a time zone; use e.g. UTC, Europe/Berlin, Asia/Shanghai"
            ) from None
    return ReportCommand(mode=mode, at=time(int(m.group(1)), int(m.group(2))), tz=tz)  # type: ignore[arg-type]


def _fmt_duration(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0 and s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


format_duration = _fmt_duration
