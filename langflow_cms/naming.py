"""Names, dimensions and numbers, checked and cleaned in one place before anything is recorded.

CMS silently rewrites bad names (first non-letter becomes ``A``, other characters ``_``, long ones are cut),
so a typo would create a different metric than the one a dashboard or alarm looks for. We refuse bad
*names* (metric names and dimension keys are chosen by people, who should hear about a mistake) and
*clean values* (they come from data, like a flow's name or a topic, and must never break a flow).

Values are cleaned readably: CMS allows ASCII letters, digits and ``. - _ / \\`` (cms-api.md §6.1), so every
run of other characters becomes one ``_`` and ``_`` at either end is dropped (``New Flow (1)`` →
``New_Flow_1``). A value with nothing ASCII left (``诗歌``) becomes ``h`` plus a stable hash of it, so two
such names never share a series.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Mapping

from langflow_cms.limits import MAX_DIMENSION_BYTES, MAX_DIMENSIONS, METRIC_NAME_RE

DIMENSION_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.\-/\\]+")
EMPTY_VALUE = "none"


def check_metric_name(name: object) -> str:
    """Return ``name`` if CMS accepts it unchanged, else raise ValueError saying why."""
    if not isinstance(name, str) or not METRIC_NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid metric name {str(name)[:80]!r}: use a letter, then letters, digits or '_', "
            "at most 64 characters"
        )
    return name


def check_dimension_key(key: object) -> str:
    """Return ``key`` if it is a valid dimension key, else raise ValueError saying why."""
    if not isinstance(key, str) or not DIMENSION_KEY_RE.fullmatch(key):
        raise ValueError(
            f"invalid dimension key {str(key)[:80]!r}: use a letter, then letters, digits, '_', '.' or '-', "
            "at most 64 characters"
        )
    return key


def clean_key(key: object) -> str:
    """A dimension key made from free text (a node's Dimensions field), or ``""`` if none can be made."""
    text = _UNSAFE_RUN.sub("_", str(key).strip()).strip("_")[:MAX_DIMENSION_BYTES]
    return text if DIMENSION_KEY_RE.fullmatch(text) else ""


@functools.lru_cache(maxsize=8192)
def _clean_text(text: str) -> str:
    cleaned = _UNSAFE_RUN.sub("_", text.strip()).strip("_")
    if not cleaned:
        if not text.strip():
            return EMPTY_VALUE
        return f"h{zlib.crc32(text.encode('utf-8')):08x}"
    return cleaned[:MAX_DIMENSION_BYTES]  # ASCII only now: bytes == characters


def clean_value(value: object) -> str:
    """Any value as a dimension value CMS stores unchanged (see the module docstring). Cached."""
    return _clean_text(value if isinstance(value, str) else str(value))


def clean_dimensions(
    dimensions: Mapping[str, object] | None, common: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """Check keys, clean values, add ``common`` and return the sorted (key, value) pairs.

    Sorted because CMS wants dimensions "in order" and so that ``{a, b}`` and ``{b, a}`` are one series.
    ``common`` (instance, env) wins over a user dimension of the same key, so one process can never write
    another's series. Raises ValueError for a bad key or more than 10 dimensions in all (our policy: the
    old CMS limit, kept so a series stays readable in the console).
    """
    merged: dict[str, str] = {}
    for key, value in (dimensions or {}).items():
        merged[check_dimension_key(key)] = clean_value(value)
    merged.update(common or {})
    if len(merged) > MAX_DIMENSIONS:
        included = sorted(common or {})
        raise ValueError(f"too many dimensions ({len(merged)}, with {included}): at most {MAX_DIMENSIONS}")
    return tuple(sorted(merged.items()))


def as_number(value: object, *, text: bool = False) -> float | None:
    """A finite float from any real number (int, float, Decimal, Fraction, numpy scalars), else None.

    ``bool`` is never a number here. Text (``"12"``, ``" 3.5 "``) is read only with ``text=True`` (the CMS
    Metric node reading a message); ``record()`` refuses it, since a string there is a caller's bug.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | bytes):
        if not text:
            return None
        value = value.strip()
    try:
        number = float(value)  # type: ignore[arg-type]
        return number if math.isfinite(number) else None
    except Exception:  # a hostile __float__ (or __index__) is a bad value, never the caller's crash
        return None
