"""RPC signature v1 (HMAC-SHA1), written from the spec rather than imported from the SDK.

The emulator must catch signing bugs in *our* client, so it cannot reuse the SDK's signer: a shared bug
would then verify itself. The algorithm (cms-api.md §3.1) is:

    canonical    = "&".join(pe(k) + "=" + pe(v) for k, v in sorted(params))   # minus Signature
    StringToSign = METHOD + "&" + pe("/") + "&" + pe(canonical)
    Signature    = base64(HMAC-SHA1(secret + "&", StringToSign))

where ``pe`` is RFC 3986 percent-encoding of the UTF-8 bytes (only ``A-Za-z0-9-_.~`` left alone).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as POP expects it (space is %20, ``*`` is %2A, ``~`` stays)."""
    return quote(value, safe="-_.~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Build the StringToSign for ``params`` (``Signature`` itself is excluded)."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(secret: str, text: str) -> str:
    """HMAC-SHA1 of ``text`` with key ``secret + "&"``, base64-encoded."""
    digest = hmac.new(f"{secret}&".encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signatures_match(expected: str, received: str) -> bool:
    """Constant-time comparison, so the emulator does not teach timing attacks by example."""
    return hmac.compare_digest(expected.encode(), received.encode())
