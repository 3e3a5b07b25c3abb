"""Which Flink namespaces the bot serves, and in which channels. Pure: no Slack, no I/O.

`FLINKDIAG_NAMESPACES` is the allow-list (and, in that order, the default namespaces to search);
`*` in it allows every namespace the bot's cloud identity can read. `FLINKDIAG_CHANNEL_NAMESPACES`
(`C012ABC=analytics,payments;C034DEF=orders`) narrows single channels further: a channel listed
there is served only the namespaces on both lists. An empty allow-list serves nothing, which is
why `flinkdiag serve` refuses to start without one (the console and tests fill it from the
simulator's fleet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

ALL = "*"
CHANGED_BY = "the bot's operator can change that with FLINKDIAG_NAMESPACES or FLINKDIAG_CHANNEL_NAMESPACES"


def parse_channel_namespaces(text: str) -> dict[str, list[str]]:
    """`C1=a,b;C2=c` -> {"C1": ["a", "b"], "C2": ["c"]}. Raises ValueError naming the bad part."""
    out: dict[str, list[str]] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        channel, sep, names = part.partition("=")
        channel = channel.strip()
        listed = [n.strip() for n in names.split(",") if n.strip()]
        if not sep or not channel or not listed:
            raise ValueError(f"`{part[:60]}` is not CHANNEL=namespace[,namespace…]")
        out.setdefault(channel, []).extend(listed)
    return out


@dataclass(frozen=True)
class NamespacePolicy:
    """The allow-list, read once from settings; `allows` is what every path asks."""

    configured: Sequence[str] = ()
    per_channel: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def allows_all(self) -> bool:
        return ALL in self.configured

    def allows(self, team_id: str, channel_id: str, namespace: str) -> bool:
        if not self.allows_all and namespace not in self.configured:
            return False
        narrowed = self.per_channel.get(channel_id)
        return narrowed is None or namespace in narrowed

    def defaults_for(self, team_id: str, channel_id: str) -> list[str]:
        """The namespaces searched when nobody named one: the configured ones this channel may use,
        or a narrowed channel's own list."""
        narrowed = self.per_channel.get(channel_id)
        if narrowed is not None:
            return [n for n in dict.fromkeys(narrowed) if self.allows(team_id, channel_id, n)]
        return [n for n in dict.fromkeys(self.configured) if n != ALL]

    def refused(self, team_id: str, channel_id: str, namespaces: Iterable[str]) -> list[str]:
        return [n for n in dict.fromkeys(namespaces) if not self.allows(team_id, channel_id, n)]

    @staticmethod
    def refusal(namespace: str) -> str:
        """The sentence a refused user sees: which namespace, and who can change it."""
        return f"I don't serve namespace `{namespace}` in this channel; {CHANGED_BY}."
