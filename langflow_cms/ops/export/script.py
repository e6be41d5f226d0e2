"""The exported script, assembled: one block per node, the graph, the flow's parts, the fixed parts."""

from __future__ import annotations

import shlex
from pathlib import Path

from langflow_cms.langflow.flow_settings import CMS_METRIC_CLASS
from langflow_cms.ops.export.code import (
    Embedded,
    field_values,
    import_block,
    literal,
    py_call,
    snake,
    split_code,
    unique,
)
from langflow_cms.ops.export.flow import (
    Edge,
    ExportError,
    Node,
    graph_data,
    load_flow,
    parse_edge,
    parse_node,
    topological,
)
from langflow_cms.ops.export.templates import (
    AS_TOOL,
    GRAPH_COMMENT,
    HEADER,
    MONITORED,
    ONE_PART,
    PART_GRAPH,
    RUN,
    SECRET_HELPER,
    SEVERAL_PARTS,
    UNMONITORED,
)

SCRIPT_NAMES = frozenset(
    {"asyncio", "os", "sys", "Graph", "graph", "run", "secret", "FLOW_NAME", "PARTS", "part_graph", "as_tool"}
)
"""Names the script itself defines; node variables and embedded classes must not shadow them."""


def export_flow(flow: dict | Path, *, flow_name: str | None = None, script_name: str | None = None) -> str:
    """The flow as a standalone Python script (source text); ``ExportError`` names what is unsupported.

    ``flow_name`` sets the ``flow`` dimension of the script's metrics. It defaults to what
    ``lfx run FLOW.json`` reports for the same file — the flow's own name, else (a flow without one) the
    file's stem — so both runs report the same series (docs/metrics.md). ``script_name`` is the file name
    the usage lines show (default: the flow file's stem + ``.py``).
    """
    flow_dict, stem = load_flow(flow)
    data = graph_data(flow_dict)
    nodes: dict[str, Node] = {}
    for raw in data["nodes"]:
        if raw.get("type") == "noteNode":  # canvas notes are not components
            continue
        node = parse_node(raw)
        if node.id in nodes:
            raise ExportError(f"node {node.id}: the id appears twice in the flow")
        nodes[node.id] = node
    if not nodes:
        raise ExportError("the flow has no components")
    edges = [parse_edge(raw, nodes) for raw in data.get("edges") or []]
    ordered = topological(nodes, edges)
    own = flow_dict.get("name")
    name = flow_name or (own.strip() if isinstance(own, str) else "") or stem or "flow"

    taken = set(SCRIPT_NAMES)
    classes, embedded, imports = _classes(ordered, taken)
    for node in ordered:
        node.var = unique(snake(node.id), taken)
    secrets: dict[str, tuple[str, str]] = {}
    graph_code, parts = _graph_code(ordered, nodes, edges, classes, secrets)
    monitored = any(
        CMS_METRIC_CLASS in (node.class_name, node.type.split(":")[-1].split("@")[0]) for node in ordered
    )
    script = script_name or f"{stem or snake(name)}.py"
    return render(
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
        classes[_class_key(node)] = unique(node.class_name, taken)
        part = split_code(node, classes[_class_key(node)])
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
        lines += _node_lines(node, incoming, nodes, classes[_class_key(node)], secrets)
        for e in edges:  # a loop is closed where the later of its two ends is defined
            if e.loop and ordered[max(position[e.source], position[e.target])] is node:
                lines += _loop_lines(e, nodes)
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
        lines += [f"    {literal(name)}: [{', '.join(e.var for e in part)}]," for name, part in parts.items()]
        lines.append("}")
        lines.append(PART_GRAPH)
    return lines, parts if len(parts) > 1 else {}


def _node_lines(
    node: Node,
    incoming: list[Edge],
    nodes: dict[str, Node],
    class_name: str,
    secrets: dict[str, tuple[str, str]],
) -> list[str]:
    """One node: its constructor with the flow's values, tool mode, its type as ``.name``, its connections."""
    values, hidden = field_values(node, {e.field for e in incoming}, secrets)
    lines = [f"# {node.display_name}"]
    # in tool mode, the toolset's metadata (tool names, descriptions, on/off) is no input of the class
    tools = [f"{k}={v}" for k, v in values if node.tool_mode and k == "tools_metadata"]
    values = [(k, v) for k, v in values if not (tools and k == "tools_metadata")]
    # A field the class does not declare (a Prompt's template variables, made from its template) cannot be
    # a constructor argument; .set() creates it, as it does for a connection.
    args = [f"_id={literal(node.id)}", *(f"{k}={v}" for k, v in values if k in node.defaults)]
    lines.append(py_call(f"{node.var} = {class_name}", args))
    if node.tool_mode:
        lines.append(py_call("as_tool", [node.var, *tools]))
    if node.module is None and node.declared_name != node.type:
        lines.append(f"{node.var}.name = {literal(node.type)}")
    if dynamic := [f"{k}={v}" for k, v in values if k not in node.defaults]:
        lines.append(py_call(f"{node.var}.set", dynamic))
    if hidden:
        lines.append(py_call(f"{node.var}.set", [f"{k}={v}" for k, v in hidden]))
    sources: dict[str, list[str]] = {}
    for e in incoming:
        source = nodes[e.source]
        sources.setdefault(e.field, []).append(f"{source.var}.{source.methods[e.output]}")
    if sources:
        sets = [f"{k}={v[0] if len(v) == 1 else '[' + ', '.join(v) + ']'}" for k, v in sources.items()]
        lines.append(py_call(f"{node.var}.set", sets))
    return lines


def _loop_lines(edge: Edge, nodes: dict[str, Node]) -> list[str]:
    """A loop's feedback edge: ``loop.set(item=body_end.method)``, typed as the canvas types it."""
    loop, body_end = nodes[edge.target], nodes[edge.source]
    lines = [
        f"# closes the loop: {loop.id} runs its body, to {body_end.id}, once per item",
        f"{loop.var}.set({edge.field}={body_end.var}.{body_end.methods[edge.output]})",
    ]
    if edge.loop_types:  # lfx 1.13 types a loop edge made in code with the item types only
        lines.append("# the edge takes the Loop's loop_types too, as on the canvas (e.g. a Message)")
        handle = f'{loop.var}.get_edges()[-1]["data"]["targetHandle"]'
        lines.append(f'{handle}["output_types"] = {literal(edge.loop_types)}')
    return lines


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


def render(
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
    import_lines = import_block([*imports, *([("", "from lfx.io import Output")] if tools else [])])
    future = [line for line in import_lines if line.startswith("from __future__")]
    stdlib = ["import asyncio", *(["import os"] if has_secrets else []), "import sys"]
    sections = [
        header.rstrip("\n"),
        "\n".join([*future, *stdlib]),
        "\n".join(line for line in import_lines if line not in future),
        f"FLOW_NAME = {literal(name)}",
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
    sections.append("\n" + RUN.substitute(SEVERAL_PARTS if parts else ONE_PART).rstrip("\n"))
    return "\n\n".join(sections) + "\n"
