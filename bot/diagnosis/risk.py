"""Risk levels, their order and their presentation (emoji, colour) in exactly one place."""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

_KNOWN: dict[str, tuple[int, str, str, str]] = {
    # raw value: (rank, label, emoji, colour)
    "RISK_LEVEL_LOW": (1, "Low", ":large_green_circle:", "#2eb67d"),
    "RISK_LEVEL_MID": (2, "Mid", ":large_orange_circle:", "#ecb22e"),
    "RISK_LEVEL_HIGH": (3, "High", ":red_circle:", "#e01e5a"),
}
# Spellings users (and maybe one day the service) use for the same levels.
_ALIASES = {
    "LOW": "RISK_LEVEL_LOW",
    "MID": "RISK_LEVEL_MID",
    "MEDIUM": "RISK_LEVEL_MID",
    "RISK_LEVEL_MEDIUM": "RISK_LEVEL_MID",
    "HIGH": "RISK_LEVEL_HIGH",
}
# A level the code has never seen is ordered like HIGH: over-alerting on something new is
# recoverable, silently ranking it below LOW is not.
UNKNOWN_RANK = 3
NONE_RANK = 0


@total_ordering
@dataclass(frozen=True)
class Risk:
    """A risk level as the service sent it, with a total order for alerting and sorting.

    `raw` keeps the service's string (shown to users when unknown); `rank` orders it.
    """

    raw: str | None

    @classmethod
    def parse(cls, value: str | Risk | None) -> Risk:
        if isinstance(value, Risk):
            return value
        if value is None or not str(value).strip():
            return cls(None)
        v = str(value).strip()
        return cls(_ALIASES.get(v.upper(), v.upper() if v.upper() in _KNOWN else v))

    @property
    def known(self) -> bool:
        return self.raw in _KNOWN

    @property
    def rank(self) -> int:
        if self.raw is None:
            return NONE_RANK
        return _KNOWN[self.raw][0] if self.raw in _KNOWN else UNKNOWN_RANK

    @property
    def label(self) -> str:
        if self.raw is None:
            return "Not reported"
        if self.raw in _KNOWN:
            return _KNOWN[self.raw][1]
        return self.raw

    @property
    def emoji(self) -> str:
        if self.raw is None:
            return ":white_circle:"
        return _KNOWN[self.raw][2] if self.raw in _KNOWN else ":grey_question:"

    @property
    def colour(self) -> str:
        if self.raw is None:
            return "#9e9e9e"
        return _KNOWN[self.raw][3] if self.raw in _KNOWN else "#8e44ad"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Risk):
            return NotImplemented
        # Tie-break on the raw string so an unknown level and HIGH never compare equal.
        return (self.rank, self.raw or "") < (other.rank, other.raw or "")

    def __str__(self) -> str:
        return self.label


LOW = Risk("RISK_LEVEL_LOW")
MID = Risk("RISK_LEVEL_MID")
HIGH = Risk("RISK_LEVEL_HIGH")
NONE = Risk(None)


def parse_threshold(text: str) -> Risk:
    """A user's `--min-risk` value: low, mid (or medium), high."""
    r = Risk.parse(text)
    if not r.known:
        raise ValueError(f"`{text}` is not a risk level; use low, mid or high")
    return r


@dataclass(frozen=True)
class HealthBand:
    label: str
    emoji: str


def health_band(score: int | None) -> HealthBand:
    """The console's bands: above 80 green, 60–80 yellow, below 60 red."""
    if score is None:
        return HealthBand("unknown", ":white_circle:")
    if score > 80:
        return HealthBand("healthy", ":large_green_circle:")
    if score >= 60:
        return HealthBand("degraded", ":large_yellow_circle:")
    return HealthBand("unhealthy", ":red_circle:")
