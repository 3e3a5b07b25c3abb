"""Alert storms: past a per-channel limit in one sweep, alerts share one digest message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.watch.model import Notice


@dataclass
class _Digest:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    notices: list[Notice] = field(default_factory=list)
    ts: str | None = None
    shown: int = 0  # how many of `notices` the posted message lists


class StormGate:
    """Per sweep and channel: the first `limit` alerts get a message each, the rest share one.

    When a shared dependency fails, a namespace watch can see dozens of deployments rise in one
    sweep; a message for each would bury the channel (and run into Slack's ~1 message/s per
    channel). The shared digest is the anchor of each of those episodes: their follow-ups go in
    its thread.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._alerts: dict[str, int] = {}
        self.digests: dict[str, _Digest] = {}

    def admit(self, channel_id: str) -> bool:
        n = self._alerts.get(channel_id, 0)
        if n < self.limit:
            self._alerts[channel_id] = n + 1
            return True
        return False

    def digest(self, channel_id: str) -> _Digest:
        return self.digests.setdefault(channel_id, _Digest())
