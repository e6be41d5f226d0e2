"""Checks the common POP parameters of a request: key, token, signature, timestamp and nonce.

The order of the checks is fixed so tests get one predictable error per defect: required parameters,
signature method/version, access key, security token, signature, timestamp, then nonce. The nonce is
remembered only once the signature verified, so a forged request cannot burn a legitimate nonce.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import signature
from .errors import api_error, missing_parameter, signature_mismatch
from .limits import TIMESTAMP_WINDOW_S

REQUIRED_COMMON = (
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)


@dataclass(frozen=True)
class KeyPair:
    """An AccessKey the emulator accepts; with ``token`` set it is an STS key that needs ``SecurityToken``."""

    key_id: str
    secret: str
    token: str | None = None


def parse_key_spec(spec: str) -> KeyPair:
    """``ID:SECRET`` or ``ID:SECRET:TOKEN`` (the CLI's ``--key`` format)."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("key must be ID:SECRET or ID:SECRET:TOKEN")
    return KeyPair(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)


def normalise_keys(keys: Mapping[str, str | tuple[str, str]] | Iterable[KeyPair]) -> dict[str, KeyPair]:
    """Accept ``{id: secret}``, ``{id: (secret, token)}`` or an iterable of KeyPair."""
    if isinstance(keys, Mapping):
        pairs = [
            KeyPair(key_id, value) if isinstance(value, str) else KeyPair(key_id, value[0], value[1])
            for key_id, value in keys.items()
        ]
    else:
        pairs = list(keys)
    return {pair.key_id: pair for pair in pairs}


def parse_timestamp(value: str) -> float | None:
    """POP's ``Timestamp`` is ISO 8601 UTC, ``YYYY-MM-DDThh:mm:ssZ``; returns epoch seconds or None."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    return None


class Authenticator:
    """Verifies signed requests against the configured keys; thread-safe."""

    def __init__(self, keys: dict[str, KeyPair]) -> None:
        self.keys = keys
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._nonces.clear()

    def verify(self, method: str, params: Mapping[str, str]) -> KeyPair:
        """Return the caller's key, or raise ApiError describing the first problem found."""
        for name in REQUIRED_COMMON:
            if not params.get(name):
                raise missing_parameter(name)
        if params["SignatureMethod"] != signature.SIGNATURE_METHOD:
            raise api_error("InvalidSignatureMethod")
        if params["SignatureVersion"] != signature.SIGNATURE_VERSION:
            raise api_error("InvalidSignatureVersion")

        key = self.keys.get(params["AccessKeyId"])
        if key is None:
            raise api_error("InvalidAccessKeyId.NotFound")
        if key.token is not None:
            token = params.get("SecurityToken")
            if not token:
                raise api_error("MissingSecurityToken")
            if token != key.token:
                raise api_error("InvalidSecurityToken.Mismatch")

        text = signature.string_to_sign(method, params)
        if not signature.signatures_match(signature.sign(key.secret, text), params["Signature"]):
            raise signature_mismatch(text)

        sent_at = parse_timestamp(params["Timestamp"])
        if sent_at is None:
            raise api_error("InvalidTimeStamp.Format")
        now = time.time()
        if abs(now - sent_at) > TIMESTAMP_WINDOW_S:
            raise api_error("InvalidTimeStamp.Expired")

        self._remember_nonce(params["SignatureNonce"], now)
        return key

    def _remember_nonce(self, nonce: str, now: float) -> None:
        # A nonce only has to be unique while its timestamp would still be accepted, so entries older
        # than two windows can be forgotten; this keeps memory bounded in long-running dev servers.
        with self._lock:
            if nonce in self._nonces:
                raise api_error("SignatureNonceUsed")
            if len(self._nonces) > 10_000:
                horizon = now - 2 * TIMESTAMP_WINDOW_S
                self._nonces = {n: t for n, t in self._nonces.items() if t >= horizon}
            self._nonces[nonce] = now
