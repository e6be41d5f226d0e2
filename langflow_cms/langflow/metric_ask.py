"""What a CMS Metric node is asked to record, read and checked without a run: its Value field, its Dimensions
rows (and the ones dropped, with why), the input fields ``{text}`` and ``{field.path}`` read, the cardinality
guard, and the field titles that flag a setting CMS would refuse while the node is edited."""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langflow_cms.langflow.flow_settings import RESERVED_DIMENSIONS, clean_dimension, parse_dimensions
from langflow_cms.limits import METRIC_NAME_RE
from langflow_cms.naming import as_number, clean_key

VALUE_SOURCES = ("Constant", "Input number", "Input field")
MAX_CUSTOM_DIMENSIONS = 4
"""flow + up to 3 flow dimensions + these + the reporter's instance and env stay within CMS's 10."""
OVERFLOW_VALUE = "other"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


# --- reading the input -----------------------------------------------------------------------------
def input_fields(value: Any) -> dict[str, Any]:
    """The fields a template or a value path can refer to: ``text`` for a Message, the keys of a Data."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"text": value}
    fields: dict[str, Any] = {}
    data = getattr(value, "data", None)
    if isinstance(data, dict):
        fields.update(data)
    if isinstance(value, Mapping):
        fields.update(value)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        fields.setdefault("text", text)
    return fields


def lookup(fields: Mapping[str, Any], path: str) -> Any:
    """A dotted path (``usage.total``) into nested dicts; None when absent."""
    current: Any = fields
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``{field}`` placeholders from the input; a missing field renders as ``unknown``."""

    def fill(match: re.Match[str]) -> str:
        found = lookup(fields, match.group(1))
        return "unknown" if found is None else str(found)

    return _PLACEHOLDER.sub(fill, str(template))


def to_number(value: Any) -> float | None:
    """A finite float from a number or numeric text (``naming.as_number`` with text); None (the node says
    "no number") for anything else, including NaN, infinities and integers too large for a float."""
    return as_number(value, text=True)


# --- cardinality guard -----------------------------------------------------------------------------
class CardinalityGuard:
    """Caps the distinct values each (metric, dimension) may take in this process.

    A dimension filled from user input (the poem's topic) could otherwise create one CMS series per
    request; values beyond the cap are reported as ``other`` so totals stay right and series stay bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], set[str]] = {}

    def admit(self, metric: str, key: str, value: str, limit: int) -> str:
        with self._lock:
            seen = self._seen.setdefault((metric, key), set())
            if value in seen:
                return value
            if len(seen) < max(1, limit):
                seen.add(value)
                return value
            return OVERFLOW_VALUE

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


GUARD = CardinalityGuard()


# --- CMS Metric ------------------------------------------------------------------------------------
VALUE_HELP = "a number, {text} (the input message as a number) or {field.path} of the input Data"


@functools.lru_cache(maxsize=1024)
def parse_value_spec(spec: str) -> tuple[str, Any]:
    """The node's Value field, parsed once per distinct text: ``("constant", 2.0)``,
    ``("field", "usage.total")`` (``{text}`` is a message's text) or ``("invalid", reason)``."""
    text = spec.strip()
    if not text:
        return ("constant", 1.0)
    match = _PLACEHOLDER.fullmatch(text)
    if match:
        return ("field", match.group(1))
    number = to_number(text)
    if number is None:
        return ("invalid", f"Value '{text[:40]}' is not {VALUE_HELP}")
    return ("constant", number)


DROP_REASONS = {
    "too_many_dimensions": f"at most {MAX_CUSTOM_DIMENSIONS} per business metric (CloudMonitor takes 10 in "
    "all; flow, flow dimensions, instance and env use the others)",
    "reserved_dimension": "the name is set by langflow-cms",
    "bad_dimension_name": "not a usable dimension name",
}
"""Why a row of the node's Dimensions was dropped, by the ``reason`` it counts under in
``langflow_cms_invalid``."""


@functools.lru_cache(maxsize=256)
def _template_dimensions(
    items: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, str, bool], ...], tuple[tuple[str, str], ...]]:
    """The node's Dimensions parsed once per distinct setting: (key, template, has placeholders) of the rows
    kept, in order, and (key, reason) of the rows dropped (``DROP_REASONS``)."""
    kept: list[tuple[str, str, bool]] = []
    dropped: list[tuple[str, str]] = []
    for key, template in dict(items).items():
        name = clean_key(key)
        if not name:
            dropped.append((str(key)[:40], "bad_dimension_name"))
        elif name in RESERVED_DIMENSIONS:
            dropped.append((name, "reserved_dimension"))
        elif len(kept) >= MAX_CUSTOM_DIMENSIONS:
            dropped.append((name, "too_many_dimensions"))
        else:
            kept.append((name, template, bool(_PLACEHOLDER.search(template))))
    return tuple(kept), tuple(dropped)


def dropped_line(dropped: tuple[tuple[str, str], ...]) -> str:
    """One status line per reason naming the dimensions dropped (at most 8 names shown, then the count)."""
    lines = []
    for reason, why in DROP_REASONS.items():
        names = [name for name, r in dropped if r == reason]
        if names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            noun = "dimension" if len(names) == 1 else f"{len(names)} dimensions"
            lines.append(f"Dropped {noun} {shown}: {why} (counted in langflow_cms_invalid)")
    return "\n".join(lines)


def _dimension_items(dimensions: Any) -> tuple[tuple[str, str], ...] | None:
    pairs: list[tuple[str, str]] = []
    if isinstance(dimensions, dict):
        pairs = [(str(k), str(v)) for k, v in dimensions.items() if v not in (None, "")]
    elif isinstance(dimensions, list):
        if dimensions and all(isinstance(i, dict) and {"key", "value"} <= set(i) for i in dimensions):
            dimensions = [{item["key"]: item["value"]} for item in dimensions]  # lfx's key/value pairs
        for item in dimensions:
            if not isinstance(item, dict):
                return None
            pairs.extend((str(k), str(v)) for k, v in item.items() if v not in (None, ""))
    elif dimensions in (None, ""):
        return ()
    else:
        return None
    return tuple(pairs)


# --- the CMS Metric node while it is edited -----------------------------------------------------------
FIELD_TITLES = {"metric_name": "Metric Name", "value": "Value", "dimensions": "Dimensions"}
WARNING = "\u26a0"


def field_titles(values: Mapping[str, Any]) -> dict[str, str]:
    """The titles of the CMS Metric node's Metric Name, Value and Dimensions for the values being edited.

    A setting CMS would refuse is flagged in its field's title (``Metric Name ⚠ not a CMS name``, short enough
    for the node's width), which the canvas shows on the node at once, before any run and without opening
    anything; a fixed setting gets its plain title back (the field's help says the rule). The same checks
    run again on every run (the node's status, ``langflow_cms_invalid``).
    Never raises."""
    titles = dict(FIELD_TITLES)
    with contextlib.suppress(Exception):
        name = str(values.get("metric_name") or "").strip()
        if not name:
            return titles
        if not METRIC_NAME_RE.fullmatch(name):
            titles["metric_name"] += f" {WARNING} not a CMS name"
        value = values.get("value")
        if parse_value_spec("" if value is None else str(value))[0] == "invalid":
            titles["value"] += f" {WARNING} not a number"
        items = _dimension_items(values.get("dimensions"))
        dropped = _template_dimensions(items)[1] if items else ()
        if dropped:
            names = ", ".join(key for key, _ in dropped[:3]) + (", …" if len(dropped) > 3 else "")
            titles["dimensions"] += f" {WARNING} {len(dropped)} dropped: {names}"
    return titles


METRIC_FIELDS = ("value", "dimensions", "max_values")
"""Shown only when a Metric Name is set (lfx also skips hidden fields when it builds the node)."""


def edited(build_config: dict, field_value: Any, field_name: str | None = None) -> dict:
    """The CMS Metric node's ``update_build_config``: Value, Dimensions and Max Values show only with a Metric
    Name, and a setting CMS would refuse is flagged in its field's title while editing, before any run."""
    values = {name: field.get("value") for name, field in build_config.items() if isinstance(field, dict)}
    if field_name is not None:
        values[field_name] = field_value
    if field_name in (None, "metric_name"):
        for name in METRIC_FIELDS:
            if name in build_config:
                build_config[name]["show"] = bool(str(values.get("metric_name") or "").strip())
    for name, title in field_titles(values).items():
        if name in build_config:
            build_config[name]["display_name"] = title
    return build_config


@dataclass
class Asked:
    """What a CMS Metric node was asked to record in this run, checked: the number (None: nothing to record,
    ``problem`` says why), its own dimensions (templates filled from the input, capped by ``GUARD``), the rows
    dropped, and every rejection as (why, reason) for ``langflow_cms_invalid``."""

    number: float | None = None
    problem: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)
    dropped: tuple[tuple[str, str], ...] = ()
    rejected: list[tuple[str, str]] = field(default_factory=list)


def ask(
    name: str,
    value_source: str | None,
    constant: Any,
    value_field: str,
    dimensions: Any,
    input_value: Any,
    max_values: int,
    value: Any,
) -> Asked:
    """Check the node's settings against this run's input, without the run: today's node passes ``value``
    (a number, ``{text}`` or ``{field.path}``); flows saved with the first node pass ``value_source``
    (Constant / Input number / Input field), ``constant`` and ``value_field``."""
    asked = Asked()
    if not METRIC_NAME_RE.fullmatch(name):
        asked.rejected.append(("not a valid CMS metric name", "bad_metric_name"))
        asked.problem = (
            f"Not recorded: '{name[:64]}' is not a valid CMS metric name "
            "(a letter, then letters, digits or _, at most 64)"
        )
        return asked
    fields: Mapping[str, Any] | None = None
    if value_source is None or value_source not in VALUE_SOURCES:
        kind, detail = parse_value_spec(str(constant if value is None else value))
        if kind == "invalid":
            asked.rejected.append(("value is not a number", "not_a_number"))
            asked.problem = f"Not recorded: {detail}"
            return asked
        if kind == "field":
            fields = input_fields(input_value)
            number = to_number(lookup(fields, detail))
            where = "the input's text" if detail == "text" else f"input field '{detail}'"
        else:
            number, where = detail, "Value"
    elif value_source == "Input number":
        number, where = to_number(getattr(input_value, "text", input_value)), "input number"
    elif value_source == "Input field":
        fields = input_fields(input_value)
        number, where = to_number(lookup(fields, (value_field or "").strip())), "input field"
    else:
        number, where = to_number(constant), "constant"
    if number is None:
        asked.rejected.append((f"no number from {where}", "not_a_number"))
        asked.problem = f"Not recorded: no number for {name} from {where}"
        return asked
    items = _dimension_items(dimensions)
    templates, dropped = (
        _template_dimensions(items)
        if items is not None
        else (
            tuple(
                (k, v, True)
                for k, v in parse_dimensions(dimensions, MAX_CUSTOM_DIMENSIONS, clean_values=False).items()
            ),
            (),
        )
    )
    asked.rejected.extend(
        (f"a dimension dropped: {DROP_REASONS[reason]}", reason) for _key, reason in dropped
    )
    for key, template, dynamic in templates:
        if dynamic:
            if fields is None:
                fields = input_fields(input_value)
            template = render(template, fields)
        asked.dimensions[key] = GUARD.admit(name, key, clean_dimension(template), max_values)
    asked.number, asked.dropped = number, dropped
    return asked
