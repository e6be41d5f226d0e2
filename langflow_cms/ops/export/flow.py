"""Reading a Langflow flow for the export: its nodes (built-in or custom code), edges and their order.

The flow's code is parsed, never executed.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNSET = object()
"""A default that cannot be read statically: the flow's value is always written."""


class ExportError(ValueError):
    """The flow cannot be exported faithfully; the message names the node or edge at fault."""


@dataclass
class Node:
    """One flow node, as much as the script needs of it."""

    id: str
    type: str
    display_name: str
    template: dict[str, Any]
    methods: dict[str, str]
    """Output name -> the component method that produces it (what ``.set(x=node.method)`` refers to)."""
    loop_outputs: set[str]
    """Outputs that take a loop's feedback edge (``allows_loop``: the Loop component's ``item``)."""
    tool_mode: bool
    """Tool mode on the canvas: the node's one output is its toolset (``component_as_tool``)."""
    code: str
    class_name: str
    module: str | None = None
    """The lfx module to import the class from; None when the flow's code is embedded."""
    defaults: dict[str, Any] = field(default_factory=dict)
    declared_name: str | None = None
    var: str = ""


@dataclass
class Edge:
    source: str
    output: str
    target: str
    field: str
    """The target's input; for a loop's feedback edge, the target's loop output (``item``)."""
    loop: bool = False
    """A loop's feedback edge: ``loop.set(item=body_end.method)``, as lfx builds loops in code."""
    loop_types: list[str] = field(default_factory=list)
    """The types the canvas gave a loop's feedback edge (the item output's types and its ``loop_types``)."""


# --- reading the flow ----------------------------------------------------------------------------------
def load_flow(flow: dict | Path | str) -> tuple[dict, str | None]:
    """(flow dict, file stem or None) from a dict or a path to a flow JSON file."""
    if isinstance(flow, dict):
        return flow, None
    path = Path(flow)
    try:
        return json.loads(path.read_text(encoding="utf-8")), path.stem
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read flow {path}: {exc}") from exc


def graph_data(flow: dict) -> dict:
    data = flow.get("data", flow)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise ExportError("not a Langflow flow: no data.nodes list")
    return data


def _builtin_index() -> dict[str, dict]:
    """lfx's prebuilt component index, by component type (the key flows use in ``data.type``).

    Read once; None-safe: without an index (version mismatch) every component is embedded from its code,
    which is still correct, just longer.
    """
    global _INDEX
    if _INDEX is None:
        from lfx.interface.components import _read_component_index

        blob = _read_component_index() or {}
        _INDEX = {
            key: entry for _, components in blob.get("entries", []) for key, entry in components.items()
        }
    return _INDEX


_INDEX: dict[str, dict] | None = None


def _code_of(node_id: str, template: dict) -> str:
    code = (template.get("code") or {}).get("value")
    if isinstance(code, list):  # `lfx export --code-as-lines`
        code = "\n".join(code)
    if not isinstance(code, str) or not code.strip():
        raise ExportError(f"node {node_id}: the component's code is missing from the flow")
    return code


def parse_node(raw: dict) -> Node:
    node_id = raw.get("id") or (raw.get("data") or {}).get("id")
    data = raw.get("data") or {}
    spec = data.get("node")
    if not node_id or not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        raise ExportError(f"node {node_id or '?'}: not a component node (no data.node.template)")
    node_type = str(data.get("type") or "")
    if not node_type:
        raise ExportError(f"node {node_id}: unknown component type (data.type is empty)")
    template = spec["template"]
    code = _code_of(node_id, template)
    metadata = spec.get("metadata") or {}
    outputs = [o for o in spec.get("outputs") or [] if isinstance(o, dict) and o.get("name")]
    node = Node(
        id=node_id,
        type=node_type,
        display_name=str(spec.get("display_name") or node_type),
        template=template,
        methods={o["name"]: o.get("method") or "" for o in outputs},
        loop_outputs={o["name"] for o in outputs if o.get("allows_loop")},
        tool_mode=bool(spec.get("tool_mode")) and any(o.get("method") == "to_toolkit" for o in outputs),
        code=code,
        class_name="",
    )
    builtin = _builtin_index().get(node_type)
    if builtin is not None and _same_code(code, builtin["template"]["code"]["value"]):
        module_path = (builtin.get("metadata") or {}).get("module") or ""
        node.module, _, node.class_name = module_path.rpartition(".")
        node.defaults = {
            name: value.get("value")
            for name, value in builtin["template"].items()
            if isinstance(value, dict) and "value" in value
        }
    if node.module is None:  # custom code, or a built-in whose code was edited on the canvas
        node.class_name, node.defaults, node.declared_name = _inspect_code(
            node_id, code, metadata.get("component_class_name")
        )
    elif not node.class_name:
        raise ExportError(f"node {node_id}: built-in component {node_type!r} has no module in lfx's index")
    return node


def _same_code(a: str, b: str) -> bool:
    return a.strip().replace("\r\n", "\n") == b.strip().replace("\r\n", "\n")


def _inspect_code(node_id: str, code: str, wanted: str | None) -> tuple[str, dict[str, Any], str | None]:
    """(component class, input defaults readable without running the code, its ``name`` attribute)."""
    from lfx.custom.validate import extract_class_name

    try:
        class_name = extract_class_name(code, wanted)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"node {node_id}: {exc}") from exc
    tree = ast.parse(code)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    defaults: dict[str, Any] = {}
    declared = None
    for statement in cls.body:
        target = _assigned_name(statement)
        value = getattr(statement, "value", None)
        if target == "name" and isinstance(value, ast.Constant):
            declared = str(value.value)
        if target == "inputs":
            for call in _declared_inputs(value):
                name, default = _input_default(call)
                if name:
                    defaults[name] = default
    return class_name, defaults, declared


def _declared_inputs(value: ast.expr | None) -> list[ast.Call]:
    """The input calls of ``inputs = [XInput(...), ...]``, or of a helper that assembles them
    (``inputs = node_inputs(pass_through_input(...), XInput(...), ...)``, the plugin's own nodes)."""
    if isinstance(value, ast.List):
        return [call for call in value.elts if isinstance(call, ast.Call)]
    if isinstance(value, ast.Call):
        return [call for call in value.args if isinstance(call, ast.Call)]
    return []


def _assigned_name(statement: ast.stmt) -> str | None:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
    elif isinstance(statement, ast.AnnAssign):
        target = statement.target
    else:
        return None
    return target.id if isinstance(target, ast.Name) else None


def _input_default(call: ast.Call) -> tuple[str | None, Any]:
    """``XInput(name="n", value=...)`` -> ("n", literal default); a missing ``value`` means an empty one."""
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    name = keywords.get("name")
    if not isinstance(name, ast.Constant) or not isinstance(name.value, str):
        return None, UNSET
    if "value" not in keywords:
        return name.value, None
    try:
        return name.value, ast.literal_eval(keywords["value"])
    except ValueError:
        return name.value, UNSET


def parse_edge(raw: dict, nodes: dict[str, Node]) -> Edge:
    """An edge from its ``data`` handles (or the UI's ``œ``-quoted handle strings)."""
    label = raw.get("id") or f"{raw.get('source')} -> {raw.get('target')}"
    data = raw.get("data") or {}
    source_handle = data.get("sourceHandle") or _handle(raw.get("sourceHandle"))
    target_handle = data.get("targetHandle") or _handle(raw.get("targetHandle"))
    source, target = raw.get("source"), raw.get("target")
    output = (source_handle or {}).get("name")
    field_name = (target_handle or {}).get("fieldName")
    # A loop's feedback edge ends at an output of the Loop (targetHandle {"name": "item", ...}), not an input.
    loop_output = (target_handle or {}).get("name") if not field_name else None
    if not (source and target and output and (field_name or loop_output)):
        raise ExportError(f"edge {label}: malformed (needs source, target, output name and field name)")
    for end in (source, target):
        if end not in nodes:
            raise ExportError(f"edge {label}: node {end} is not in the flow")
    if not nodes[source].methods.get(output):
        raise ExportError(f"node {source}: has no output {output!r} (used by an edge to {target})")
    if loop_output:
        if loop_output not in nodes[target].loop_outputs:
            raise ExportError(
                f"edge {label}: ends at output {loop_output!r} of node {target}, which is not a loop output "
                "(allows_loop); only a Loop component's feedback edge may end at an output"
            )
        types = [str(t) for t in (target_handle or {}).get("output_types") or []]
        return Edge(source, output, target, loop_output, loop=True, loop_types=types)
    return Edge(source, output, target, field_name)


def _handle(text: Any) -> dict | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = json.loads(text.replace("œ", '"'))
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


# --- ordering ------------------------------------------------------------------------------------------
def topological(nodes: dict[str, Node], edges: list[Edge]) -> list[Node]:
    """Upstream before downstream, ties in flow order, so every ``.set`` refers to a defined variable.

    A loop's feedback edge does not count: the Loop comes before its body, and the body's last node
    closes the loop once it is defined.
    """
    incoming = {node_id: {e.source for e in edges if e.target == node_id and not e.loop} for node_id in nodes}
    ordered: list[Node] = []
    done: set[str] = set()
    while len(done) < len(nodes):
        ready = [i for i in nodes if i not in done and incoming[i] <= done]
        if not ready:  # a cycle (loop component): keep flow order for the rest
            ready = [i for i in nodes if i not in done]
        for node_id in ready:
            done.add(node_id)
            ordered.append(nodes[node_id])
    return ordered
