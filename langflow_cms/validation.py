"""Metric names and dimensions, checked against CloudMonitor's rules before anything is recorded.

CMS silently rewrites bad names (first non-letter becomes ``A``, other characters ``_``, long ones are cut),
so a typo would create a different metric than the one a dashboard or alarm looks for. We refuse bad
*names* (metric names and dimension keys are chosen by people, who should hear about a mistake) and
*sanitise values* (they come from data, like a flow's name or a topic, and must never break a flow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from langflow_cms.limits import MAX_DIMENSION_BYTES, MAX_DIMENSIONS, METRIC_NAME_RE

DIMENSION_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_UNSAFE_VALUE_CHARS = re.compile(r"[^A-Za-z0-9_.\-/\\]")  # ASCII only: CMS rewrites the rest
EMPTY_VALUE = "none"


def check_metric_name(name: object) -> str:
    """Return ``name`` if CMS accepts it unchanged, else raise ValueError saying why."""
    if not isinstance(name, str) or not METRIC_NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid metric name {name!r}: use a letter, then letters, digits or '_', at most 64 characters"
        )
    return name


def check_dimension_key(key: object) -> str:
    """Return ``key`` if it is a valid dimension key, else raise ValueError saying why."""
    if not isinstance(key, str) or not DIMENSION_KEY_RE.fullmatch(key):
        raise ValueError(
            f"invalid dimension key {key!r}: use a letter, then letters, digits, '_', '.' or '-', "
            "at most 64 characters"
        )
    return key


def clean_dimension_value(value: object) -> str:
    """Turn any value into a dimension value CMS stores unchanged.

    Characters outside letters, digits and ``. - _ / \\`` (the documented set; this includes ``= & ,``)
    become ``_``; the result is cut to 64 UTF-8 bytes on a character boundary; empty becomes ``none``.
    """
    text = _UNSAFE_VALUE_CHARS.sub("_", value if isinstance(value, str) else str(value))
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_DIMENSION_BYTES:
        text = encoded[:MAX_DIMENSION_BYTES].decode("utf-8", "ignore")
    return text or EMPTY_VALUE


def clean_dimensions(
    dimensions: Mapping[str, object] | None, common: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """Validate keys, sanitise values, add ``common`` and return the sorted (key, value) pairs.

    Sorted because CMS wants dimensions "in order" and so that ``{a, b}`` and ``{b, a}`` are one series.
    ``common`` (instance, env) wins over a user dimension of the same key, so one process can never write
    another's series. Raises ValueError for a bad key or more than 10 dimensions in all.
    """
    merged: dict[str, str] = {}
    for key, value in (dimensions or {}).items():
        merged[check_dimension_key(key)] = clean_dimension_value(value)
    merged.update(common or {})
    if len(merged) > MAX_DIMENSIONS:
        included = sorted(common or {})
        raise ValueError(f"too many dimensions ({len(merged)}, with {included}): CMS allows {MAX_DIMENSIONS}")
    return tuple(sorted(merged.items()))
