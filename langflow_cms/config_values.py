"""The parsers of ``LANGFLOW_CMS_*`` values (``config.py``'s table names them): each takes the stripped
text and returns the value or raises ValueError (``Rejected`` with an explanation the ConfigError shows)."""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langflow_cms import limits


class Rejected(ValueError):
    """A parser's deliberate explanation, shown in the ConfigError (a plain ValueError's text is not)."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_REGION_RE = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]+){1,4}")
_DIMENSION_VALUE_RE = re.compile(rf"[A-Za-z0-9._\-/\\]{{1,{limits.MAX_DIMENSION_BYTES}}}")
MAX_ACCOUNT_QPS = 200.0
"""The highest per-account PutCustomMetric QPS cap of any region (cn-hangzhou/-beijing/-shanghai)."""
WINDOW_S = 60.0


def boolean(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError
        return text.lower()

    return parse


def number(
    kind: type, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable:
    """A finite int/float in [low, high], each end optionally open."""

    def parse(text: str) -> Any:
        value = kind(text)  # ValueError for "abc", "1.5" as int, ...
        if (
            math.isnan(value)
            or value < low
            or value > high
            or (low_open and value == low)
            or (high_open and value == high)
        ):
            raise ValueError
        return value

    return parse


def region(text: str) -> str:
    if not _REGION_RE.fullmatch(text):
        raise ValueError
    return text


def group_id(text: str) -> str:
    if not text.isascii() or not text.isdigit():
        raise ValueError
    return text


def dimension_value(text: str) -> str:
    if not _DIMENSION_VALUE_RE.fullmatch(text):
        raise ValueError
    return text


_SLS_PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_SLS_LOGSTORE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,61}[a-z0-9]")


def sls_project(text: str) -> str:
    if not _SLS_PROJECT_RE.fullmatch(text):
        raise ValueError
    return text


def sls_logstore(text: str) -> str:
    if not _SLS_LOGSTORE_RE.fullmatch(text):
        raise ValueError
    return text


def path(text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~user" without such a user, "~" without HOME or a passwd entry
        raise Rejected("'~' cannot be expanded (no such user, or no home): use a full path") from None


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve to loopback addresses only (`localhost`): the only
    hosts we talk to over plain http. A name counts by what it resolves to, never by how it looks
    (`evil.localhost` may resolve anywhere); a name that does not resolve is not loopback."""
    host = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return bool(host) and _resolves_to_loopback(host)


@functools.lru_cache(maxsize=64)
def _resolves_to_loopback(host: str) -> bool:
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)
    except (OSError, ValueError, UnicodeError):
        return False


def endpoint(text: str) -> str:
    """`host[:port]` or `scheme://host[:port][/]` -> `scheme://host[:port]`.

    Without a scheme, loopback hosts get http (the emulator) and every other host https. Plain http to a
    non-loopback host is refused: the signed URL carries the AccessKeyId, the STS token and a signature that
    can be replayed for 15 minutes.
    """
    parts = urlsplit(text if "://" in text else f"//{text}")
    scheme = parts.scheme.lower()
    host = parts.hostname
    port = parts.port  # ValueError for a non-numeric or out-of-range port
    if (
        not host
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError
    if not scheme:
        scheme = "http" if is_loopback_host(host) else "https"
    if scheme not in ("http", "https"):
        raise ValueError
    if scheme == "http" and not is_loopback_host(host):
        raise Rejected("plain http is only allowed for loopback hosts (127.0.0.1, ::1, localhost)")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"
