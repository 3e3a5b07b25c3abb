"""Structured logging: one event per line, key=value or JSON, with a per-request id.

Hand-written on the stdlib rather than structlog: it is one formatter and one contextvar, and
every library we use (aiohttp, Bolt, APScheduler, SQLAlchemy) already logs through `logging`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def new_request_id(prefix: str = "") -> str:
    rid = prefix + secrets.token_hex(4)
    request_id.set(rid)
    return rid


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"rid={request_id.get()}",
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}",
        ]
        for k, v in _fields(record).items():
            text = v if isinstance(v, int | float) else json.dumps(str(v), ensure_ascii=False)
            parts.append(f"{k}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "rid": request_id.get(),
            "msg": record.getMessage(),
        }
        doc.update(
            {k: v if isinstance(v, int | float | bool | None) else str(v) for k, v in _fields(record).items()}
        )
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "kv", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' chatter at INFO is noise in an on-call log.
    for noisy in ("aiohttp.access", "apscheduler.executors.default", "slack_bolt.AsyncApp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
