"""Which flows are monitored, what they are called, and the settings that travel in the flow JSON.

A flow opts in to monitoring by containing a **CMS Metric** node; that node's inputs (extra dimensions such as
a ``version`` for A/B comparison) are saved in the flow JSON, so they reach every run path — the UI,
``lfx run``, ``lfx serve`` — with no server-side configuration. This module reads them back from a graph.
"""

from __future__ import annotations

import inspect
import json
import sys
import weakref
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from langflow_cms import contract
from langflow_cms.naming import clean_key, clean_value

MODES = ("annotated", "all", "off")
CMS_METRIC_CLASS = "CmsMetricComponent"
MAX_EXTRA_DIMENSIONS = 3
"""Automatic metrics carry up to 6 dimensions of their own (with the reporter's instance and env); CMS
accepts 10, so a flow may add at most 3."""

RESERVED_DIMENSIONS = contract.RESERVED_DIMENSIONS
UNNAMED_FLOW = "unnamed"
clean_dimension = clean_value
"""The dimension value exactly as the reporter will send it (``naming.clean_value``)."""


def monitor_mode() -> str:
    """`LANGFLOW_CMS_MONITOR` as read once with the rest of the configuration: an invalid value is never
    replaced by a default (the reporter is off and says why); no reporter means nothing is monitored."""
    from langflow_cms.lifecycle import current_config

    config = current_config()
    return config.monitor if config is not None else "off"


@dataclass(frozen=True)
class FlowSettings:
    """Monitoring settings of one flow, read from its CMS Metric node(s)."""

    annotated: bool = False
    dimensions: dict[str, str] = field(default_factory=dict)
    own_credentials: bool = False
    """A CMS Metric node of the flow has an AccessKey of its own: the flow's metrics wait for the node to
    bind it and are never sent with the process's credentials."""
    flow_name: str = ""
    """The CMS Metric node's Flow Name: the ``flow`` dimension instead of the flow's own name (cleaned)."""


def is_cms_metric_vertex(vertex: Any) -> bool:
    """True for a CMS Metric node, whether it came from the sidebar (``ext:…``) or a ``.py`` graph."""
    component = getattr(vertex, "custom_component", None)
    if component is not None and type(component).__name__ == CMS_METRIC_CLASS:
        return True
    return "CmsMetric" in str(getattr(vertex, "vertex_type", "") or "")


def _vertex_param(vertex: Any, name: str) -> Any:
    for attr in ("params", "raw_params"):
        params = getattr(vertex, attr, None) or {}
        if name in params and params[name] not in (None, ""):
            return params[name]
    component = getattr(vertex, "custom_component", None)
    inputs = getattr(component, "_inputs", None) or {}
    if name in inputs:
        return getattr(inputs[name], "value", None)
    return None


def parse_dimensions(
    raw: Any, limit: int = MAX_EXTRA_DIMENSIONS, *, clean_values: bool = True
) -> dict[str, str]:
    """Accept a dict (DictInput) or ``k=v`` text; drop reserved and empty keys; cap the count."""
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                pairs.extend(item.items())
    elif isinstance(raw, str):
        for chunk in raw.replace("\n", ",").split(","):
            if "=" in chunk:
                key, value = chunk.split("=", 1)
                pairs.append((key, value))
    out: dict[str, str] = {}
    for key, value in pairs:
        key_text = clean_key(key)
        if not key_text or key_text in RESERVED_DIMENSIONS or value in (None, ""):
            continue
        out[key_text] = clean_dimension(value) if clean_values else str(value)
        if len(out) >= limit:
            break
    return out


def read_settings(graph: Any) -> FlowSettings:
    """The flow's settings: annotated if any vertex is a CMS Metric node; its ``flow_dimensions`` merged."""
    dims: dict[str, str] = {}
    annotated = own_credentials = False
    explicit = ""
    for vertex in list(getattr(graph, "vertices", None) or []):
        if not is_cms_metric_vertex(vertex):
            continue
        annotated = True
        if not explicit:
            explicit = _explicit_name(_vertex_param(vertex, "flow_name"))
        if _vertex_param(vertex, "access_key_id") or _vertex_param(vertex, "access_key_secret"):
            own_credentials = True
        for key, value in parse_dimensions(_vertex_param(vertex, "flow_dimensions")).items():
            if len(dims) < MAX_EXTRA_DIMENSIONS or key in dims:
                dims[key] = value
    return FlowSettings(
        annotated=annotated, dimensions=dims, own_credentials=own_credentials, flow_name=explicit
    )


def _explicit_name(value: Any) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    return clean_dimension(text) if text else ""


def explicit_flow_name(graph: Any) -> str:
    """The Flow Name set on the flow's (first) CMS Metric node, cleaned; ``""`` when none is set."""
    for vertex in list(getattr(graph, "vertices", None) or []):
        if is_cms_metric_vertex(vertex):
            name = _explicit_name(_vertex_param(vertex, "flow_name"))
            if name:
                return name
    return ""


def should_monitor(settings: FlowSettings, mode: str | None = None) -> bool:
    """Apply the mode: ``all`` monitors every flow, ``annotated`` only flows with a CMS Metric node."""
    mode = mode or monitor_mode()
    if mode == "off":
        return False
    return mode == "all" or settings.annotated


_PATH_LOCALS = ("script_path", "flow_path", "flow")
"""The locals that hold the flow file in lfx's run paths, in order (see ``source_name_from_stack``)."""
_PATH_NAMES = frozenset(_PATH_LOCALS)


def source_name_from_stack(max_depth: int = 80) -> str | None:
    """The name of the flow being run from a file or a JSON dict, found on the caller's stack: the flow
    JSON's own ``"name"``, else the file's stem (``lfx run poem_slow.json`` of a flow named "poem" is
    ``poem``; a ``.py`` graph or a JSON without a name is its stem).

    ``lfx run flow.json`` and ``run_flow_from_json("flow.json")`` build the graph with neither a name nor an
    id, and lfx keeps the path only as a local of the running call (``script_path`` in
    ``lfx.run.base.run_flow``, ``flow`` in ``aload_flow_from_json``/``arun_flow_from_json``). Reading it is
    best effort: if lfx renames those locals the flow is simply labelled by the next fallback.
    """
    for frame in _callers(max_depth):
        code = frame.f_code  # f_locals builds a dict of a function's locals: read it only where one may be
        if (
            not code.co_flags & inspect.CO_OPTIMIZED  # a module or class body: its locals are a dict already
            or not _PATH_NAMES.isdisjoint(code.co_varnames)
            or not _PATH_NAMES.isdisjoint(code.co_cellvars)
            or not _PATH_NAMES.isdisjoint(code.co_freevars)
        ):
            local_vars = frame.f_locals
            for name in _PATH_LOCALS:
                candidate = local_vars.get(name)
                if isinstance(candidate, dict) and isinstance(candidate.get("data"), dict):
                    own = candidate.get("name")  # a flow passed as its JSON dict
                    if isinstance(own, str) and own.strip():
                        return own
                if isinstance(candidate, str | Path) and str(candidate).lower().endswith((".json", ".py")):
                    path = Path(candidate)
                    return (_json_flow_name(path) if path.suffix.lower() == ".json" else None) or path.stem
    return None


def served_name_from_stack(flow_id: str, max_depth: int = 80) -> str | None:
    """Under ``lfx serve``: the title its flow registry holds for ``flow_id`` (the flow JSON's ``"name"``,
    else the file's stem), found on the caller's stack. ``lfx serve`` gives the graph only the id; the
    request handler running it holds the registry (a closure variable ``registry`` whose ``_flows`` maps the
    id to ``(graph, FlowMeta)``). Best effort, like ``source_name_from_stack``: if lfx changes this the
    flow is labelled by its id, as before."""
    for frame in _callers(max_depth):
        code = frame.f_code
        if "registry" in code.co_freevars or "registry" in code.co_varnames:
            flows = getattr(frame.f_locals.get("registry"), "_flows", None)
            entry = flows.get(flow_id) if isinstance(flows, dict) else None
            title = getattr(entry[1], "title", None) if isinstance(entry, tuple) and len(entry) == 2 else None
            if isinstance(title, str) and title.strip():
                return title
    return None


def _callers(max_depth: int) -> Iterator[FrameType]:
    """The frames above the caller of the function that calls this, innermost first, at most
    ``max_depth``."""
    try:
        frame: FrameType | None = sys._getframe(2)
    except ValueError:
        return
    depth = 0
    while frame is not None and depth < max_depth:
        yield frame
        frame = frame.f_back
        depth += 1


_JSON_NAMES: dict[tuple[str, int, int], str | None] = {}
"""The ``"name"`` of flow files already read, by (path, mtime, size): a loop of ``run_flow_from_json``
reads its file once."""


def _json_flow_name(path: Path) -> str | None:
    """The flow JSON's own ``"name"`` (None when it has none or the file cannot be read)."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _JSON_NAMES:
            if len(_JSON_NAMES) > 256:
                _JSON_NAMES.clear()
            data = json.loads(path.read_text(encoding="utf-8"))
            name = data.get("name") if isinstance(data, dict) else None
            _JSON_NAMES[key] = name.strip() if isinstance(name, str) and name.strip() else None
        return _JSON_NAMES[key]
    except (OSError, ValueError):
        return None


def flow_label(graph: Any, stem: str | None = None) -> str:
    """The ``flow`` dimension: the CMS Metric node's Flow Name if set, else the flow's name (the graph's,
    else ``stem``: the name in the flow file being run or served, else that file's stem, see
    ``source_name_from_stack`` and ``served_name_from_stack``), else its id, else ``unnamed`` — cleaned
    readably (``New Flow (1)`` → ``New_Flow_1``)."""
    explicit = explicit_flow_name(graph) if graph is not None else ""
    if explicit:
        return explicit
    for value in (getattr(graph, "flow_name", None), stem, getattr(graph, "flow_id", None)):
        if value not in (None, "", "None"):
            return clean_dimension(value)
    return UNNAMED_FLOW


# --- the ``node`` dimension ---------------------------------------------------------------------------
NODE_SUFFIX_CHARS = 5


class GraphCache:
    """One value per live graph object, forgotten with the graph.

    Keyed by ``id(graph)``, with a weak reference that proves the identity. Not a WeakKeyDictionary: that
    hashes and compares its keys, and lfx's ``Graph`` hashes and compares by rendering itself whole
    (``repr``), tens of µs per lookup, for every node build. A graph that cannot be weakly referenced is not
    cached (``get`` keeps answering None)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, graph: Any) -> Any:
        entry = self._entries.get(id(graph))
        return entry[1] if entry is not None and entry[0]() is graph else None

    def put(self, graph: Any, value: Any) -> None:
        key, entries = id(graph), self._entries

        def forget(ref: weakref.ref) -> None:  # the graph is gone: its id is free
            if entries.get(key, (None,))[0] is ref:
                entries.pop(key, None)

        with suppress(TypeError):
            entries[key] = (weakref.ref(graph, forget), value)

    def pop(self, graph: Any) -> None:
        self._entries.pop(id(graph), None)


_node_labels = GraphCache()


def _id_suffix(vertex_id: str) -> str:
    """The random tail Langflow gives every node id (``ChatInput-gw8tY`` → ``gw8tY``): stable for the node's
    life, across renames; the last characters of the cleaned id when there is no such tail."""
    tail = vertex_id.rsplit("-", 1)[-1] if "-" in vertex_id else vertex_id
    tail = clean_dimension(tail)
    return tail[-NODE_SUFFIX_CHARS:] if len(tail) > NODE_SUFFIX_CHARS else tail


def node_labels(graph: Any) -> dict[str, str]:
    """``node`` dimension of every vertex of ``graph``: its display name, cleaned (``Chat Input`` →
    ``Chat_Input``), plus ``_`` and the id's short stable suffix when another node of the flow has the same
    display name (``Timer_Start_gw8tY``). Computed once per graph object, and again when it has gained or
    lost vertices (an added "Prompt" renames the first one ``Prompt_<tail>``)."""
    vertices = list(getattr(graph, "vertices", None) or [])
    cached = _node_labels.get(graph)
    if cached is not None and cached[0] == len(vertices):
        return cached[1]
    names: dict[str, str] = {}
    for vertex in vertices:
        vertex_id = str(getattr(vertex, "id", "") or "")
        if not vertex_id:
            continue
        display = getattr(vertex, "display_name", None) or vertex_id.rsplit("-", 1)[0]
        names[vertex_id] = clean_dimension(display)
    counts: dict[str, int] = {}
    for label in names.values():
        counts[label] = counts.get(label, 0) + 1
    labels = {
        vertex_id: (f"{label}_{_id_suffix(vertex_id)}" if counts[label] > 1 else label)
        for vertex_id, label in names.items()
    }
    if len(set(labels.values())) < len(labels):  # hand-written ids may share their tail (A-poem1, B-poem1)
        seen: dict[str, int] = {}
        for label in labels.values():
            seen[label] = seen.get(label, 0) + 1
        for vertex_id, label in labels.items():
            if seen[label] > 1:
                labels[vertex_id] = f"{names[vertex_id]}_{clean_dimension(vertex_id)}"
    _node_labels.put(graph, (len(vertices), labels))
    return labels


def node_label(graph: Any, vertex_id: str) -> str:
    """The ``node`` dimension of one vertex (see ``node_labels``); the cleaned id if the graph does not know
    the vertex (a node added after the graph was built, or no graph)."""
    vertex_id = str(vertex_id)
    if graph is None:
        return clean_dimension(vertex_id)
    label = node_labels(graph).get(vertex_id)
    if label is None:  # the graph grew since its labels were computed
        _node_labels.pop(graph)
        label = node_labels(graph).get(vertex_id)
    return label or clean_dimension(vertex_id)
