"""Checking ids and names before they become part of a request path."""

from __future__ import annotations

import functools
import unicodedata

from bot.flink.errors import InvalidInput


def check_path_value(value: object, field: str, *, max_length: int) -> str:
    """Refuse a value that would change the request path instead of naming one thing in it.

    Percent-encoding alone is not enough: some gateways decode `%2F` and normalise `..`.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field} is a {type(value).__name__}", user_message=f"The {field} is missing.")
    return _check_str(value, field, max_length)


# A sweep asks about the same few thousand ids again and again; a good one is checked once.
# Refusals raise, so only good values are ever cached.
@functools.lru_cache(maxsize=8192)
def _check_str(value: str, field: str, max_length: int) -> str:
    if not value.strip():
        raise InvalidInput(f"{field} is empty", user_message=f"The {field} is empty.")
    if len(value) > max_length:
        raise InvalidInput(
            f"{field} too long ({len(value)} > {max_length})",
            user_message=f"The {field} is too long ({len(value)} characters; at most {max_length}).",
        )
    if value in (".", ".."):
        raise InvalidInput(f"{field} is a dot path", user_message=f"The {field} cannot be `{value}`.")
    for ch in value:
        if ch in "/\\?#":
            raise InvalidInput(
                f"{field} contains {ch!r}", user_message=f"The {field} must not contain `{ch}`."
            )
        # Cc: control characters (\x00, \n, \r, \t, DEL, C1); Cs: lone surrogates, which cannot
        # be UTF-8 encoded; Zl/Zp: line and paragraph separators.
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise InvalidInput(
                f"{field} contains control character U+{ord(ch):04X}",
                user_message=f"The {field} must not contain control characters.",
            )
    return value
