"""Keep AccessKey secrets, STS tokens and request signatures out of log lines, exceptions and reprs.

Why this exists: `aliyun-python-sdk-core` puts the whole signed URL (`AccessKeyId`, `SecurityToken`,
`Signature`) into `SDK.HttpError` messages and logs it at ERROR on `aliyunsdkcore.client`; a
`SignatureDoesNotMatch` answer echoes the string-to-sign (URL-encoded, so `SecurityToken%3D...`); DEBUG
logging prints the parameter dict. A signature is replayable for 15 minutes and a token is a live credential,
so every such text passes through `redact`.

Two mechanisms, both cheap:
- `key=value` style pairs for the sensitive parameter names, in query strings (plain and URL-encoded), JSON
  and Python reprs. Key ids are masked (`LTAI****abcd`) so logs still say *which* key was used; everything
  else -> `***`.
- exact values handed out by the credential provider (`register_secret`), in raw and URL-encoded forms,
  wherever they appear.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from urllib.parse import quote, quote_plus

__all__ = ["RedactingFilter", "install_log_redaction", "mask_key_id", "redact", "register_secret"]

MASK = "***"
MIN_SECRET_LEN = 8
"""`register_secret` ignores shorter values: replacing e.g. "0" or "abc" everywhere would mangle text."""

_NAMES = (
    r"AccessKeyId|AccessKeySecret|SecurityToken|Signature|"
    r"access_key_id|access_key_secret|security_token|sts_token|"
    r"x-acs-security-token|x-acs-signature"
)
# separator: "=" (optionally URL-encoded once or twice), or ":"/"=" with optional quotes (JSON, repr, headers)
_SEP = r"""(?:%253D|%3D|\s*=\s*|["']?\s*:\s*["']?)"""
# value: up to a delimiter of the surrounding syntax; an encoded "&" (string-to-sign) also ends it
_VALUE = r"""[^\s&"',;)}\]>]+?(?=%26|%2526|[\s&"',;)}\]>]|$)"""
# not preceded by a letter: "%26SecurityToken%3D..." (string-to-sign) must match, "XSignature=" must not
_PAIR_RE = re.compile(rf"(?<![A-Za-z_])(?P<key>{_NAMES})(?P<sep>{_SEP})(?P<value>{_VALUE})", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()


def _remake_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_remake_lock_in_child)
_secrets_re: re.Pattern[str] | None = None


def mask_key_id(key_id: str) -> str:
    """`LTAI5tABCDEFabcd` -> `LTAI****abcd`: enough to tell keys apart, not enough to use one."""
    if len(key_id) >= 12:
        return f"{key_id[:4]}****{key_id[-4:]}"
    return f"{key_id[: len(key_id) // 3]}****"


def _mask_pair(match: re.Match[str]) -> str:
    key = match.group("key")
    value = match.group("value")
    masked = mask_key_id(value) if key.lower() in ("accesskeyid", "access_key_id") else MASK
    return f"{key}{match.group('sep')}{masked}"


def register_secret(value: str | None) -> None:
    """Redact this exact value (and its URL-encoded forms) from now on. Values < 8 characters are ignored."""
    global _secrets_re
    if not value or len(value) < MIN_SECRET_LEN:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(quote(value, safe=""), safe="")}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # longest first so that an encoded form is replaced whole, not by a shorter prefix
        alternation = "|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))
        _secrets_re = re.compile(alternation)


def redact(text: str) -> str:
    """Return `text` with sensitive parameter values and every registered secret replaced."""
    if not text:
        return text
    text = _PAIR_RE.sub(_mask_pair, text)
    secrets_re = _secrets_re
    if secrets_re is not None:
        text = secrets_re.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record in place: message and args are merged and redacted, a traceback is pre-rendered
    redacted.

    The traceback matters because `logger.exception(...)` on an `SDK.HttpError` prints the exception message,
    which contains the signed URL; handlers reuse `record.exc_text` when it is set.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (
            Exception
        ):  # a bad format string: leave it to the handler to report, but still redact the template
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()
_LOGGER_PREFIXES = ("aliyunsdkcore", "langflow_cms", "credentials")
"""`credentials` is the logger of alibabacloud-credentials: its refresh warnings include STS response
bodies."""


def install_log_redaction() -> None:
    """Attach the redacting filter to the SDK, credentials-library and `langflow_cms` loggers. Idempotent.

    A logger's filters only see records created on that very logger, not on its children, so the filter goes
    on every existing logger under those prefixes (plus the ones known to log secrets). Call it again after
    importing modules that create new loggers; `credentials.make_acs_client` calls it for you.
    """
    import aliyunsdkcore.client  # noqa: F401  (creates the `aliyunsdkcore.client` logger that logs signed URLs)

    names = {*_LOGGER_PREFIXES, "aliyunsdkcore.client", "aliyunsdkcore.http.http_response"}
    names.update(
        name
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(tuple(f"{prefix}." for prefix in _LOGGER_PREFIXES))
    )
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
