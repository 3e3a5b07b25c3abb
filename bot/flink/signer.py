"""ACS3-HMAC-SHA256 request signing (Alibaba Cloud signature V3). Pure: no I/O, no clock.

Written by hand because the vendor's signer lives inside its SDK runtime, whose transport we do not
use (see flink-openapi.md: a new session and SSL context per call); tests hold this module to the
vendor's `Utils.get_authorization` byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the SDK does it (`~` unreserved, `/` encoded)."""
    return quote(value, safe="~", encoding="utf-8")


def canonical_query(query: Mapping[str, str | None] | None) -> str:
    if not query:
        return ""
    keys = sorted(k for k, v in query.items() if v is not None)
    return "&".join(f"{k}={percent_encode(str(query[k]))}" for k in keys)


def canonical_headers(
    headers: Iterable[tuple[str, str]], names: Iterable[str] | None = None
) -> tuple[str, str]:
    """Canonical header block and signed-header list.

    With `names`, only those headers are used: that is how a verifier recomputes a signature
    over the list the client declared.
    """
    wanted = {n.lower() for n in names} if names is not None else None
    grouped: dict[str, list[str]] = {}
    for k, v in headers:
        lk = k.lower()
        if v is None or (wanted is not None and lk not in wanted):
            continue
        grouped.setdefault(lk, []).append(str(v).strip())
    keys = sorted(grouped)
    block = "".join(f"{k}:{','.join(sorted(grouped[k]))}\n" for k in keys)
    return block, ";".join(keys)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Signed:
    authorization: str
    signature: str
    signed_headers: str
    canonical_request: str


def sign(
    *,
    method: str,
    path: str,
    query: Mapping[str, str | None] | None,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    access_key_id: str,
    access_key_secret: str,
    signed_header_names: Iterable[str] | None = None,
) -> Signed:
    """Sign a request. `path` is as sent (already percent-encoded)."""
    block, signed_names = canonical_headers(headers, signed_header_names)
    canonical_request = "\n".join(
        [method.upper(), path or "/", canonical_query(query), block, signed_names, payload_hash]
    )
    string_to_sign = f"{ALGORITHM}\n{sha256_hex(canonical_request.encode('utf-8'))}"
    signature = hmac.new(
        access_key_secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    auth = f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_names},Signature={signature}"
    return Signed(auth, signature, signed_names, canonical_request)


_AUTH = re.compile(
    r"^ACS3-HMAC-SHA256\s+Credential=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<sh>[^,\s]*),\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


@dataclass(frozen=True)
class ParsedAuthorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> ParsedAuthorization | None:
    """Parse an `Authorization` header; None when it is not a V3 HMAC-SHA256 one."""
    if not value:
        return None
    m = _AUTH.match(value.strip())
    if not m:
        return None
    names = tuple(n for n in m.group("sh").split(";") if n)
    return ParsedAuthorization(m.group("ak"), names, m.group("sig").lower())


def verify(
    *,
    method: str,
    path: str,
    query: Mapping[str, str | None] | None,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    parsed: ParsedAuthorization,
    access_key_secret: str,
) -> bool:
    """Recompute the signature over the headers the client declared and compare in constant time."""
    expected = sign(
        method=method,
        path=path,
        query=query,
        headers=headers,
        payload_hash=payload_hash,
        access_key_id=parsed.access_key_id,
        access_key_secret=access_key_secret,
        signed_header_names=parsed.signed_headers,
    )
    return hmac.compare_digest(expected.signature, parsed.signature)
