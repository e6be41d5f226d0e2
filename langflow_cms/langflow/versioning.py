"""Which version of a flow a graph is: the rule shared by the server's runs and the guard.

Langflow 1.13 keeps a flow's saved versions (``v1``, ``v2``, ... in ``/api/v1/flows/{id}/versions/``) but
has no "active version" pointer: activating a version copies its data into the flow. So a graph is matched
to a version by its **content fingerprint**: a hash of what makes a flow behave (each node's id, type and
field values, each edge's ends and handles), not of where nodes sit on the canvas. Secret fields
(``password``) are left out: Langflow strips them from the versions it returns.

**The rule**: a hand-set ``version`` (the CMS Metric node's Flow Dimensions) wins; else the *oldest* saved
version with the same fingerprint (after an activation the restored graph exists twice, as the version and
later as an auto-save of it: the oldest keeps runs of the same graph under one name); else the graph is an
unsaved draft: ``draft-<first 6 hex of the fingerprint>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

VERSION = "version"
DRAFT_PREFIX = "draft-"
FINGERPRINT_CHARS = 12
DRAFT_CHARS = 6
_EDGE_KEYS = ("source", "target", "sourceHandle", "targetHandle")


def _node_content(node: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    data = node.get("data") or {}
    inner = data.get("node") or {}
    fields: dict[str, Any] = {}
    for name, spec in (inner.get("template") or {}).items():
        if isinstance(spec, Mapping) and "value" in spec and not spec.get("password"):
            fields[name] = spec.get("value")
    return str(node.get("id", "")), str(data.get("type", "")), fields


def fingerprint(data: Mapping[str, Any] | None) -> str:
    """The content fingerprint of a flow's ``data`` (``{"nodes": [...], "edges": [...]}``), hex."""
    data = data or {}
    nodes = sorted((_node_content(n) for n in data.get("nodes") or [] if isinstance(n, Mapping)), key=str)
    edges = sorted(
        json.dumps([e.get(k) for k in _EDGE_KEYS], sort_keys=True, default=str)
        for e in data.get("edges") or []
    )
    text = json.dumps([nodes, edges], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


def hand_set_version(data: Mapping[str, Any] | None) -> str | None:
    """The ``version`` a CMS Metric node of the flow sets in its Flow Dimensions, if any (cleaned)."""
    from langflow_cms.langflow.flow_settings import parse_dimensions

    for node in (data or {}).get("nodes") or []:
        inner = ((node or {}).get("data") or {}).get("node") or {}
        template = inner.get("template") or {}
        if "flow_dimensions" not in template or "CmsMetric" not in str((node.get("data") or {}).get("type")):
            continue
        found = parse_dimensions((template.get("flow_dimensions") or {}).get("value")).get(VERSION)
        if found:
            return found
    return None


def saved_version(fingerprint_: str, versions: Iterable[tuple[int, str]]) -> str | None:
    """``vN`` of the oldest saved version (number, fingerprint) with this fingerprint, or None."""
    numbers = [number for number, found in versions if found == fingerprint_]
    return f"v{min(numbers)}" if numbers else None


def draft_label(fingerprint_: str) -> str:
    return DRAFT_PREFIX + fingerprint_[:DRAFT_CHARS]


def label(data: Mapping[str, Any] | None, versions: Iterable[tuple[int, str]]) -> str:
    """The ``version`` a run of ``data`` reports, by the rule in the module doc."""
    found = hand_set_version(data)
    if found:
        return found
    fp = fingerprint(data)
    return saved_version(fp, versions) or draft_label(fp)
