"""Export a Langflow flow (JSON) to a standalone, readable Python script that builds the same graph in code.

Teams prototype on the canvas and deploy code, and Langflow has no flow-to-code export. The script this
module writes is the flow as a program: built-in components are imported from their lfx modules, custom-code
components (our CMS Metric and Timer nodes included) are embedded as classes from the source saved in the
flow, every node keeps its id, connections are ``.set(...)`` calls and field values are those of the flow
(only the ones that differ from the component's defaults). Monitoring needs no extra code: the CMS Metric and
Timer nodes are nodes of the exported graph, so the tracing service times it as it times ``lfx run``.

The export is static: the flow's code is parsed, never executed, so exporting an untrusted flow is safe.
Credentials never reach the script: a secret field becomes an environment look-up.
"""

from __future__ import annotations

import argparse
import ast
import json
import keyword
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langflow_cms.langflow.flow_settings import CMS_METRIC_CLASS

SCRIPT_NAMES = frozenset(
    {"asyncio", "os", "sys", "Graph", "graph", "run", "secret", "FLOW_NAME", "PARTS", "part_graph", "as_tool"}
)
"""Names the script itself defines; node variables and embedded classes must not shadow them."""
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
def _load(flow: dict | Path | str) -> tuple[dict, str | None]:
    """(flow dict, file stem or None) from a dict or a path to a flow JSON file."""
    if isinstance(flow, dict):
        return flow, None
    path = Path(flow)
    try:
        return json.loads(path.read_text(encoding="utf-8")), path.stem
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read flow {path}: {exc}") from exc


def _graph_data(flow: dict) -> dict:
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


def _parse_node(raw: dict) -> Node:
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
        if target == "inputs" and isinstance(value, ast.List):
            for call in value.elts:
                if isinstance(call, ast.Call):
                    name, default = _input_default(call)
                    if name:
                        defaults[name] = default
    return class_name, defaults, declared


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


def _parse_edge(raw: dict, nodes: dict[str, Node]) -> Edge:
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


# --- ordering and naming -------------------------------------------------------------------------------
def _topological(nodes: dict[str, Node], edges: list[Edge]) -> list[Node]:
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


def _snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"\W+", "_", text).strip("_").lower()
    return text if text and not text[0].isdigit() else f"node_{text}"


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken or keyword.iskeyword(name):
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


# --- embedded code -------------------------------------------------------------------------------------
@dataclass
class Embedded:
    """The source of one custom component, split into its imports and the rest."""

    node_id: str
    class_name: str
    imports: list[str]
    """Each top-level import statement of the code (hoisted to the top of the script)."""
    body: str


TYPING_NAMES = frozenset({"Optional", "List", "Dict", "Union"})


def _implicit_names() -> set[str]:
    """Names Langflow pre-imports into flow code (``lfx.custom.validate.get_default_imports``)."""
    import lfx.field_typing
    from lfx.field_typing.constants import CUSTOM_COMPONENT_SUPPORTED_TYPES

    return set(TYPING_NAMES) | {n for n in CUSTOM_COMPONENT_SUPPORTED_TYPES if hasattr(lfx.field_typing, n)}


def _split_code(node: Node, class_name: str) -> Embedded:
    """Hoist the imports to the top of the script; drop the module docstring; rename the class if asked."""
    tree = ast.parse(node.code)
    lines = node.code.splitlines()
    drop: set[int] = set()
    imports: list[str] = []
    for index, statement in enumerate(tree.body):
        span = range(statement.lineno - 1, (statement.end_lineno or statement.lineno))
        if isinstance(statement, ast.Import | ast.ImportFrom):
            imports.append(ast.unparse(statement))
            drop.update(span)
        elif index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            drop.update(span)  # module docstring
    # Langflow runs flow code with a few names pre-imported (Data, Message, Optional...); make them explicit.
    bound = {
        a.asname or a.name.split(".")[0]
        for s in ast.walk(tree)
        if isinstance(s, ast.Import | ast.ImportFrom)
        for a in s.names
    }
    bound |= {
        s.name for s in tree.body if isinstance(s, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for name in sorted((_implicit_names() & used) - bound):
        module = "typing" if name in TYPING_NAMES else "lfx.field_typing"
        imports.append(f"from {module} import {name}")
    body = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")
    body = re.sub(r"\n{3,}", "\n\n\n", body)
    if class_name != node.class_name:
        body = re.sub(rf"\b{re.escape(node.class_name)}\b", class_name, body)
    return Embedded(node.id, class_name, imports, body)


# --- values --------------------------------------------------------------------------------------------
def _is_secret(spec: dict) -> bool:
    return bool(
        spec.get("password") or spec.get("load_from_db") or spec.get("_input_type") == "SecretStrInput"
    )


def _env_name(node: Node, field_name: str, spec: dict, used: dict[str, tuple[str, str]]) -> str:
    """The variable a secret is read from: the Langflow global variable's own name, else NODE_FIELD."""
    value = spec.get("value")
    if spec.get("load_from_db") and isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return value
    name = re.sub(r"\W+", "_", f"{node.id}_{field_name}").strip("_").upper()
    owner = used.setdefault(name, (node.id, field_name))
    if owner != (node.id, field_name):
        name = f"{name}_{len(used)}"
        used[name] = (node.id, field_name)
    return name


def _py(value: Any, indent: int = 4) -> str:
    """A Python literal in the script's style (double quotes); a long dict or list gets one item a line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid Python
    if isinstance(value, dict):
        items, brackets = [f"{_py(k)}: {_py(v, indent + 4)}" for k, v in value.items()], "{}"
    elif isinstance(value, list | tuple):
        items, brackets = [_py(v, indent + 4) for v in value], "[]"
    else:
        return repr(value)
    flat = brackets[0] + ", ".join(items) + brackets[1]
    if len(flat) + indent <= 100 and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return brackets[0] + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + brackets[1]


def _field_values(
    node: Node, connected: set[str], secrets: dict[str, tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(plain values, secret look-ups) as (field, Python expression), leaving out the component's defaults.

    Secrets are kept apart because they are passed with ``.set()``: lfx takes a ``SecretStrInput``
    constructor argument as the *name* of a Langflow global variable, while ``.set()`` passes the value.
    """
    out: list[tuple[str, str]] = []
    hidden: list[tuple[str, str]] = []
    for name, spec in node.template.items():
        if name == "code" or name.startswith("_") or not isinstance(spec, dict) or "value" not in spec:
            continue
        if name in connected:
            continue
        value = spec["value"]
        if _is_secret(spec):
            if value in (None, ""):
                continue
            hidden.append((name, f"secret({_py(_env_name(node, name, spec, secrets))})"))
            continue
        default = node.defaults.get(name, UNSET)
        if default is not UNSET and (value == default or (default is None and not value)):
            continue
        out.append((name, _py(value)))
    return out, hidden


# --- the script ----------------------------------------------------------------------------------------
def export_flow(flow: dict | Path, *, flow_name: str | None = None, script_name: str | None = None) -> str:
    """The flow as a standalone Python script (source text); ``ExportError`` names what is unsupported.

    ``flow_name`` sets the ``flow`` dimension of the script's metrics. It defaults to what
    ``lfx run FLOW.json`` reports for the same file — the flow's own name, else (a flow without one) the
    file's stem — so both runs report the same series (docs/metrics.md). ``script_name`` is the file name
    the usage lines show (default: the flow file's stem + ``.py``).
    """
    flow_dict, stem = _load(flow)
    data = _graph_data(flow_dict)
    nodes: dict[str, Node] = {}
    for raw in data["nodes"]:
        if raw.get("type") == "noteNode":  # canvas notes are not components
            continue
        node = _parse_node(raw)
        if node.id in nodes:
            raise ExportError(f"node {node.id}: the id appears twice in the flow")
        nodes[node.id] = node
    if not nodes:
        raise ExportError("the flow has no components")
    edges = [_parse_edge(raw, nodes) for raw in data.get("edges") or []]
    ordered = _topological(nodes, edges)
    own = flow_dict.get("name")
    name = flow_name or (own.strip() if isinstance(own, str) else "") or stem or "flow"

    taken = set(SCRIPT_NAMES)
    classes, embedded, imports = _classes(ordered, taken)
    for node in ordered:
        node.var = _unique(_snake(node.id), taken)
    secrets: dict[str, tuple[str, str]] = {}
    graph_code, parts = _graph_code(ordered, nodes, edges, classes, secrets)
    monitored = any(
        CMS_METRIC_CLASS in (node.class_name, node.type.split(":")[-1].split("@")[0]) for node in ordered
    )
    script = script_name or f"{stem or _snake(name)}.py"
    return _render(
        flow_dict, name, stem, script, imports, embedded, graph_code, bool(secrets), parts, monitored
    )


def _class_key(node: Node) -> tuple[str | None, str, str]:
    return (node.module, node.class_name, node.code if node.module is None else "")


def _classes(
    ordered: list[Node], taken: set[str]
) -> tuple[dict[tuple[str | None, str, str], str], list[Embedded], list[tuple[str, str]]]:
    """The class each node instantiates: built-ins imported, each distinct embedded source once.

    Returns (class key -> name in the script, embedded sources, (node id, import statement) pairs).
    """
    classes: dict[tuple[str | None, str, str], str] = {}
    imports: list[tuple[str, str]] = []
    for node in ordered:  # built-ins first: they keep their lfx class names
        if node.module is not None and _class_key(node) not in classes:
            classes[_class_key(node)] = node.class_name
            taken.add(node.class_name)
            imports.append((node.id, f"from {node.module} import {node.class_name}"))
    embedded: list[Embedded] = []
    for node in ordered:
        if _class_key(node) in classes:
            continue
        classes[_class_key(node)] = _unique(node.class_name, taken)
        part = _split_code(node, classes[_class_key(node)])
        embedded.append(part)
        imports.extend((node.id, statement) for statement in part.imports)
    return classes, embedded, imports


def _graph_code(
    ordered: list[Node],
    nodes: dict[str, Node],
    edges: list[Edge],
    classes: dict[tuple[str | None, str, str], str],
    secrets: dict[str, tuple[str, str]],
) -> tuple[list[str], dict[str, list[Node]]]:
    """One block per node (constructor with its values, then its connections), then ``graph = ...``.

    Returns the lines and the flow's separate parts (first node id -> the nodes that end it), which is
    empty unless the flow has more than one part.
    """
    lines: list[str] = []
    position = {n.id: i for i, n in enumerate(ordered)}
    for node in ordered:
        incoming = [e for e in edges if e.target == node.id and not e.loop]
        values, hidden = _field_values(node, {e.field for e in incoming}, secrets)
        lines.append(f"# {node.display_name}")
        # in tool mode, the toolset's metadata (tool names, descriptions, on/off) is no input of the class
        tools = [f"{k}={v}" for k, v in values if node.tool_mode and k == "tools_metadata"]
        values = [(k, v) for k, v in values if not (tools and k == "tools_metadata")]
        # A field the class does not declare (a Prompt's template variables, made from its template) cannot be
        # a constructor argument; .set() creates it, as it does for a connection.
        args = [f"_id={_py(node.id)}", *(f"{k}={v}" for k, v in values if k in node.defaults)]
        lines.append(_call(f"{node.var} = {classes[_class_key(node)]}", args))
        if node.tool_mode:
            lines.append(_call("as_tool", [node.var, *tools]))
        if node.module is None and node.declared_name != node.type:
            lines.append(f"{node.var}.name = {_py(node.type)}")
        if dynamic := [f"{k}={v}" for k, v in values if k not in node.defaults]:
            lines.append(_call(f"{node.var}.set", dynamic))
        if hidden:
            lines.append(_call(f"{node.var}.set", [f"{k}={v}" for k, v in hidden]))
        sources: dict[str, list[str]] = {}
        for e in incoming:
            source = nodes[e.source]
            sources.setdefault(e.field, []).append(f"{source.var}.{source.methods[e.output]}")
        if sources:
            sets = [f"{k}={v[0] if len(v) == 1 else '[' + ', '.join(v) + ']'}" for k, v in sources.items()]
            lines.append(_call(f"{node.var}.set", sets))
        for e in edges:  # a loop is closed where the later of its two ends is defined
            if e.loop and ordered[max(position[e.source], position[e.target])] is node:
                loop, body_end = nodes[e.target], nodes[e.source]
                lines.append(f"# closes the loop: {loop.id} runs its body, to {body_end.id}, once per item")
                lines.append(f"{loop.var}.set({e.field}={body_end.var}.{body_end.methods[e.output]})")
                if e.loop_types:  # lfx 1.13 types a loop edge made in code with the item types only
                    lines.append(
                        "# the edge takes the Loop's loop_types too, as on the canvas (e.g. a Message)"
                    )
                    handle = f'{loop.var}.get_edges()[-1]["data"]["targetHandle"]'
                    lines.append(f'{handle}["output_types"] = {_py(e.loop_types)}')
        lines.append("")

    heads = [n for n in ordered if not any(e.target == n.id and not e.loop for e in edges)]
    sinks = [n for n in ordered if not any(e.source == n.id for e in edges)]
    start = next((n for n in heads if n.type == "ChatInput"), heads[0] if heads else ordered[0])
    # The graph is built from every end, without a start, as lfx builds a flow's JSON: it runs every node, in
    # the same order. Graph(start, end) would run only what is reachable from start (and upstream of that),
    # and schedule it differently: another node fails first, other series are reported.
    parts = _parts(ordered, edges, sinks, start)
    ends = [e for part_ends in parts.values() for e in part_ends]
    if len(parts) > 1:
        lines.append(
            f"# The flow has {len(parts)} separate parts; `graph` runs them all at once, as `lfx run` runs "
            "the flow's JSON.\n# PARTS names each part by its first node: `python this.py --part NAME` runs "
            "one alone."
        )
    lines.append("graph = Graph(flow_name=FLOW_NAME)")
    lines += [f"graph.add_component({e.var})" for e in ends]
    if len(parts) > 1:
        lines.append("")
        lines.append("PARTS = {")
        lines += [f"    {_py(name)}: [{', '.join(e.var for e in ends_)}]," for name, ends_ in parts.items()]
        lines.append("}")
        lines.append(PART_GRAPH)
    return lines, parts if len(parts) > 1 else {}


PART_GRAPH = '''

def part_graph(name: str) -> Graph:
    """One part of the flow alone, e.g. a RAG flow's ingestion.

    Use it instead of `graph`, not besides it: a component belongs to the graph built from it last.
    """
    part = Graph(flow_name=FLOW_NAME)
    for end in PARTS[name]:
        part.add_component(end)
    return part'''


def _call(head: str, args: list[str]) -> str:
    flat = f"{head}({', '.join(args)})"
    if len(flat) <= 110 and "\n" not in flat:
        return flat
    return f"{head}(\n" + "".join(f"    {arg},\n" for arg in args) + ")"


def _walk(first: set[str], step: dict[str, set[str]]) -> set[str]:
    seen, todo = set(first), list(first)
    while todo:
        for other in step[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    return seen


def _parts(ordered: list[Node], edges: list[Edge], sinks: list[Node], start: Node) -> dict[str, list[Node]]:
    """The flow's separate (unconnected) parts: first node id -> the nodes whose upstream covers the part.

    The part holding the Chat Input comes first; the others in flow order.
    """
    neighbours: dict[str, set[str]] = {n.id: set() for n in ordered}
    up: dict[str, set[str]] = {n.id: set() for n in ordered}
    for e in edges:
        neighbours[e.source].add(e.target)
        neighbours[e.target].add(e.source)
        up[e.target].add(e.source)
    parts: dict[str, list[Node]] = {}
    placed: set[str] = set()
    for first in [start, *ordered]:
        if first.id in placed:
            continue
        members = _walk({first.id}, neighbours)
        placed |= members
        ends = [s for s in sinks if s.id in members]
        covered = _walk({s.id for s in ends}, up)
        ends += [n for n in ordered if n.id in members and n.id not in covered]  # a cycle with no way out
        parts[first.id] = ends
    return parts


def _import_block(imports: list[tuple[str, str]]) -> list[str]:
    """Merge and sort the import statements of every component.

    A name imported from two places is fine when both are the same object (``lfx.io.BoolInput`` is
    ``lfx.inputs.inputs.BoolInput``): the first import is kept. Two different objects under one name are an
    error. ``from __future__`` imports sort first, as Python requires.
    """
    plain: set[str] = set()
    from_: dict[str, set[str]] = {}
    bound: dict[str, tuple[str, str]] = {}  # name -> (where it comes from, node id)
    for node_id, source in [*imports, ("", "from lfx.graph import Graph")]:
        statement = ast.parse(source).body[0]
        assert isinstance(statement, ast.Import | ast.ImportFrom)
        module = statement.module if isinstance(statement, ast.ImportFrom) and not statement.level else None
        for alias in statement.names:
            name = alias.asname or alias.name.split(".")[0]
            if module:
                origin = f"{module}.{alias.name}"
            else:  # `import a.b` binds `a`; `import a.b as c` binds the module a.b
                origin = alias.name if alias.asname else alias.name.split(".")[0]
            if name in bound and bound[name][0] != origin:
                _check_same(name, (origin, node_id), bound[name])
                continue  # the same object: one import binds it for every component
            bound[name] = (origin, node_id)
            if module:
                from_.setdefault(module, set()).add(
                    alias.name + (f" as {alias.asname}" if alias.asname else "")
                )
            elif isinstance(statement, ast.Import):
                plain.add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
            else:
                plain.add(ast.unparse(statement))
    lines = sorted(plain)
    for module in sorted(from_, key=lambda m: (m != "__future__", m)):
        names = sorted(from_[module])
        line = f"from {module} import {', '.join(names)}"
        if len(line) > 110:
            line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
        lines.append(line)
    return lines


def _check_same(name: str, new: tuple[str, str], old: tuple[str, str]) -> None:
    """Refuse two components that import different objects under one name (the script has one namespace).

    To tell, the two modules are imported: installed code, like the script's own imports; the flow's
    code is never run.
    """
    try:
        same = _resolve(new[0]) is _resolve(old[0])
        why = "different objects"
    except Exception as exc:  # any import failure means: cannot tell
        same, why = False, f"cannot tell whether they are the same object here ({type(exc).__name__}: {exc})"
    if not same:
        raise ExportError(
            f"node {new[1]}: its code imports {name} as {new[0]}, node {old[1]} as {old[0]} ({why}); "
            "rename one of them in its code"
        )


def _resolve(dotted: str) -> object:
    """The object ``from a.b import c`` (given ``a.b.c``) or ``import a.b`` binds."""
    import importlib

    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, attribute = dotted.rpartition(".")
        if not module:
            raise
        return getattr(importlib.import_module(module), attribute)


GRAPH_COMMENT = """
# --- The flow: one component per node, with the node's id, its values and its connections (.set) ---
# A custom component keeps the flow's component type as its `.name`: metrics name the component after it."""

MONITORED = """\
CloudMonitor monitoring is configured by the flow's own CMS Metric node (and Timer nodes, if any), which
are nodes of the graph below, so this script reports the same metric series as the flow."""
UNMONITORED = """This flow has no CMS Metric node, so, like the flow, the script reports nothing to
CloudMonitor unless LANGFLOW_CMS_MONITOR=all is set (then: flow and node latency, status and token usage,
under the flow name FLOW_NAME below). To report by default, add a CMS Metric node to the flow and export
it again."""

HEADER = '''\
"""{title}

Exported from {source} by `langflow-cms export`; equivalent to running the flow with `lfx run`.

    python {script} "your input"      # prints the flow's output
    lfx run {script} "your input"     # the same graph, run by lfx{parts_note}

{monitoring}
Credentials are not in this file: the reporter reads them from the environment or a RAM role{secret_note}.
"""
'''

MAIN = '''\
def run(text: str = "") -> str:
    """Run the flow once and return its Chat Output text, as `lfx run` prints it."""
    from lfx.cli.script_loader import extract_structured_result
    from lfx.run._defaults import apply_run_defaults
    from lfx.schema.schema import InputValueRequest

    inputs = InputValueRequest(input_value=text) if text else None
    apply_run_defaults(graph, session_id=None, user_id=None)  # a session, a user: as `lfx run` runs a flow

    async def steps() -> list:
        return [step async for step in graph.async_start(inputs=inputs)]

    result = extract_structured_result(asyncio.run(steps()))
    return str(result.get("result", result.get("text", "")))


if __name__ == "__main__":
    from langflow_cms import get_reporter

    status = 0
    try:
        print(run(sys.argv[1] if len(sys.argv) > 1 else ""))
    except Exception as exc:
        print(f"{FLOW_NAME} failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        get_reporter().close()  # deliver the metrics before the process exits
    sys.exit(status)
'''

MAIN_PARTS = '''\
def run(text: str = "", part: str | None = None) -> str:
    """Run the flow once, or one of its PARTS alone; return its Chat Output text, as `lfx run` prints it."""
    from lfx.cli.script_loader import extract_structured_result
    from lfx.run._defaults import apply_run_defaults
    from lfx.schema.schema import InputValueRequest

    inputs = InputValueRequest(input_value=text) if text else None
    flow = part_graph(part) if part else graph
    apply_run_defaults(flow, session_id=None, user_id=None)  # a session, a user: as `lfx run` runs a flow

    async def steps() -> list:
        return [step async for step in flow.async_start(inputs=inputs)]

    result = extract_structured_result(asyncio.run(steps()))
    return str(result.get("result", result.get("text", "")))


if __name__ == "__main__":
    from langflow_cms import get_reporter

    args, part = sys.argv[1:], None
    if args[:1] == ["--part"]:
        if len(args) < 2 or args[1] not in PARTS:
            sys.exit(f"{FLOW_NAME}: --part takes one of {', '.join(PARTS)}")
        part, args = args[1], args[2:]
    status = 0
    try:
        print(run(args[0] if args else "", part))
    except Exception as exc:
        print(f"{FLOW_NAME} failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        get_reporter().close()  # deliver the metrics before the process exits
    sys.exit(status)
'''

AS_TOOL = '''\
def as_tool(component, tools_metadata=None) -> None:
    """Tool mode, as on the canvas: the component's one output is its toolset, for an Agent's tools."""
    toolset = Output(name="component_as_tool", display_name="Toolset", method="to_toolkit", types=["Tool"])
    component.outputs = [toolset]
    component.map_outputs()
    if tools_metadata is not None:  # the tools' names and descriptions as edited on the canvas
        component.tools_metadata = tools_metadata
'''

SECRET_HELPER = '''\
def secret(name: str) -> str:
    """A credential from the environment: exported scripts never contain one."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{FLOW_NAME}: set the environment variable {name} (a secret field of the flow)")
    return value
'''


def _render(
    flow: dict,
    name: str,
    stem: str | None,
    script_name: str,
    imports: list[tuple[str, str]],
    embedded: list[Embedded],
    graph_code: list[str],
    has_secrets: bool,
    parts: dict[str, list[Node]],
    monitored: bool,
) -> str:
    title = str(flow.get("name") or name)
    if flow.get("description"):
        title += f": {flow['description']}"
    script = shlex.quote(script_name)  # `python "Basic Prompting.py"` works as typed
    header = HEADER.format(
        title=title,
        source=f"{stem}.json" if stem else "a flow",
        script=script,
        monitoring=MONITORED if monitored else UNMONITORED,
        secret_note="; the flow's secret fields are read from environment variables" if has_secrets else "",
        parts_note="".join(
            f'\n    python {script} --part {part} "your input"  # only the part that starts at {part}'
            for part in parts
        ),
    )
    tools = any(line.startswith("as_tool(") for line in graph_code)
    import_lines = _import_block([*imports, *([("", "from lfx.io import Output")] if tools else [])])
    future = [line for line in import_lines if line.startswith("from __future__")]
    stdlib = ["import asyncio", *(["import os"] if has_secrets else []), "import sys"]
    sections = [
        header.rstrip("\n"),
        "\n".join([*future, *stdlib]),
        "\n".join(line for line in import_lines if line not in future),
        f"FLOW_NAME = {_py(name)}",
    ]
    if has_secrets:
        sections.append("\n" + SECRET_HELPER.rstrip("\n"))
    if tools:
        sections.append("\n" + AS_TOOL.rstrip("\n"))
    for part in embedded:
        sections.append(
            f"\n# --- {part.class_name}: custom component code saved in the flow ---\n{part.body}"
        )
    sections.append(GRAPH_COMMENT)
    sections.append("\n".join(graph_code))
    sections.append("\n" + (MAIN_PARTS if parts else MAIN).rstrip("\n"))
    return "\n\n".join(sections) + "\n"


# --- command line --------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", type=Path, help="flow JSON file (as saved or exported by Langflow)")
    parser.add_argument("-o", "--output", type=Path, help="script to write (default: print it)")
    parser.add_argument("--flow-name", help="`flow` dimension of the metrics (default: the file's stem)")


def run(args: argparse.Namespace) -> int:
    """``langflow-cms export FLOW.json -o flow.py``."""
    try:
        script = export_flow(
            args.flow, flow_name=args.flow_name, script_name=args.output.name if args.output else None
        )
    except ExportError as exc:
        print(f"langflow-cms export: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(script)
        return 0
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)  # `-o missing/dir/flow.py` creates the folder
        args.output.write_text(script, encoding="utf-8")
    except OSError as exc:
        print(f"langflow-cms export: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langflow-cms export", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
