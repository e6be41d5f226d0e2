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

__all__ = ["RedactingFilter", "cut", "install_log_redaction", "mask_key_id", "redact", "register_secret"]

MASK = "***"
MAX_CHARS = 64_000
"""redact() looks at this many characters of a text and cuts the rest (never passed on unredacted)."""
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


# --- what any text may carry: secrets by their syntax or shape, and personal data (docs/events.md) -------
_PRIVATE_KEY_RE = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)", re.DOTALL
)
# a scheme starts where a run of scheme characters starts: tried once per run, not once per character
_USERINFO_RE = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^\s:/@\"']*+):[^\s@/\"']++@")
_SECRET_LOOKING = r"(?-i:(?=[^\s\"',;&)}\]>]*[0-9A-Z_+/=%~]))"
"""After a bare space (no ``:`` or ``=``), a value counts as a secret only when it holds a digit, a capital
or a symbol: a word of lowercase letters there is prose (``Invalid token provided``, ``password
authentication failed``). Secrets with a known shape (JWTs, API keys, key ids) are found by shape anyway."""
_AUTH_SCHEME_RE = re.compile(
    r"\b((?i:bearer|basic|digest|token))(\s+)(?!\*\*\*)" + _SECRET_LOOKING + r"[A-Za-z0-9._~+/=-]{8,}"
)
_KEYWORD = (
    r"secret|password|passwd|passwort|pwd|pass|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"signature|sig|credentials?|session[_-]?id|sessionid|auth[_-]?key|secret[_-]?key"
)
_KEY_PAIR_RE = re.compile(
    rf"(?i)(?<![\w.-])(?P<key>-{{0,2}}[\w.-]*?(?:{_KEYWORD}))(?![A-Za-z0-9]|[_-]id\b)"
    r"""(?P<sep>["']?\s*[:=]\s*|(?<=[a-zA-Z])\s+(?=\S{8,})""" + _SECRET_LOOKING + ")"
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|(?!\*\*\*)[^\s"',;&)}\]>]+)"""
)
_CLI_FLAG_RE = re.compile(rf"(?i)(?<![\w-])(--?(?=[\w-]*?(?:{_KEYWORD}))[\w-]++)(=|\s+)(?!\*\*\*)(?!-)\S+")
"""``--password=p&ss`` or ``--access-key-secret VALUE``: the whole next word, whatever it holds."""
_TOKEN_RE = re.compile(
    r"\beyJ(?:[A-Za-z0-9_]|-(?!eyJ)){5,}+\.[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*"  # a JWT (no start tried twice)
    r"|\bsk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_\w{20,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAKIA[0-9A-Z]{16}\b"  # an AWS key id
    r"|\bAIza[0-9A-Za-z_-]{30,}"  # Google
    r"|\bhf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|\bCAIS[A-Za-z0-9+/=_-]{40,}"  # an Alibaba Cloud STS token
)
_KEY_ID_RE = re.compile(r"\bLTAI[A-Za-z0-9]{12,}\b")
_EMAIL_RE = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD_RE = re.compile(r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?![\d-])")
"""13 to 19 digits starting 2 to 6 (every card network; epoch milliseconds start with 1), Luhn-checked."""
_PHONE_RE = re.compile(
    r"\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d){6,12}(?!\d)"  # international
    r"|(?<!\d)1[3-9]\d{9}(?!\d)"  # a mainland China mobile number
    r"|\(\d{3}\)\s?\d{3}-\d{4}\b"  # (415) 555-2671
)
_NATIONAL_ID_RE = re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])")
"""A mainland China resident identity card number."""


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if _luhn(digits) else match.group(0)


_VARIABLE_NAME_RE = re.compile(r"(?:ALIBABA_CLOUD|ALIYUN|LANGFLOW_CMS)_[A-Z_]+")
"""Our own settings' names (``NoCredentials: ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set``): what to fix."""


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.strip("'\"") == MASK or _VARIABLE_NAME_RE.fullmatch(value):
        return match.group(0)  # masked already (a known parameter name), or the name of a setting
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{MASK}{quote_char}"


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_%.~-")


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, not ending inside a word of key or token characters (up
    to 256 back), so no secret is cut in two: the part of one kept would not be recognised."""
    if len(text) <= limit:
        return text
    if text[limit] not in _TOKEN_CHARS:
        return text[:limit]
    for end in range(limit, max(limit - 256, 0), -1):
        if text[end - 1] not in _TOKEN_CHARS:
            return text[:end]
    return text[:limit]


def redact(text: str) -> str:
    """Return `text` with every secret and personal datum that docs/events.md lists replaced: sensitive
    parameter values, registered secrets, credentials by syntax (key/value pairs, URL passwords,
    Authorization schemes, private keys) and by shape (API key and token formats), e-mail addresses,
    card numbers, phone numbers and national id numbers."""
    if not text:
        return text
    if len(text) > MAX_CHARS:
        kept = cut(text, MAX_CHARS)
        return f"{redact(kept)}… [{len(text) - len(kept)} characters cut]"
    text = _PAIR_RE.sub(_mask_pair, text)
    secrets_re = _secrets_re
    if secrets_re is not None:
        text = secrets_re.sub(MASK, text)
    text = _PRIVATE_KEY_RE.sub(rf"\1{MASK}", text)
    text = _USERINFO_RE.sub(rf"\1:{MASK}@", text)
    text = _AUTH_SCHEME_RE.sub(rf"\1\2{MASK}", text)
    text = _TOKEN_RE.sub(MASK, text)
    text = _CLI_FLAG_RE.sub(rf"\1\2{MASK}", text)
    text = _KEY_PAIR_RE.sub(_mask_value, text)
    text = _KEY_ID_RE.sub(lambda m: mask_key_id(m.group(0)), text)
    text = _EMAIL_RE.sub("[email]", text)
    text = _NATIONAL_ID_RE.sub("[id]", text)
    text = _CARD_RE.sub(_mask_card, text)
    return _PHONE_RE.sub("[phone]", text)


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
