"""Small parsers shared by the actions: required values, integers, paging and ``Name.N`` lists."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import invalid_parameter, missing_parameter


def required(params: Mapping[str, str], *names: str) -> None:
    """MissingParameter for the first of ``names`` that is absent or empty."""
    for name in names:
        if not params.get(name):
            raise missing_parameter(name)


def integer(
    params: Mapping[str, str], name: str, default: int | None = None, *, minimum: int = 0
) -> int | None:
    """An optional integer parameter of at least ``minimum``; ``default`` when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not re.fullmatch(r"-?\d+", text) or int(text) < minimum:
        raise invalid_parameter(name, f"must be an integer >= {minimum}")
    return int(text)


def page(params: Mapping[str, str], number: str, size: str, *, default_size: int = 10) -> tuple[int, int]:
    """(page number, page size), both at least 1; defaults 1 and ``default_size``."""
    return (
        integer(params, number, 1, minimum=1) or 1,
        integer(params, size, default_size, minimum=1) or default_size,
    )


def indexed(params: Mapping[str, str], prefix: str, *, limit: int | None = None) -> list[str]:
    """The values of ``<prefix>.1``, ``<prefix>.2``, … in N order (the SDK's RepeatList encoding)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = sorted((int(m.group(1)), value) for key, value in params.items() if (m := pattern.match(key)))
    if limit is not None and len(found) > limit:
        raise invalid_parameter(f"{prefix}.N", f"{len(found)} values, at most {limit}")
    return [value for _, value in found]


def boolean(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise invalid_parameter(name, "must be true or false")
    return raw.lower() == "true"
