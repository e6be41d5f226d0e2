"""The fixed parts of an exported script: its docstring, ``run`` and ``__main__``, and its helpers.

They are the script's own source, so they read as code; ``{...}`` fields are filled by ``str.format`` and
``$...`` fields by :class:`string.Template`.
"""

from string import Template

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

RUN = Template('''\
def run(text: str = ""$part_parameter) -> str:
    """$summary"""
    from lfx.cli.script_loader import extract_structured_result
    from lfx.run._defaults import apply_run_defaults
    from lfx.schema.schema import InputValueRequest

    inputs = InputValueRequest(input_value=text) if text else None$choose_graph
    apply_run_defaults($graph, session_id=None, user_id=None)  # a session, a user: as `lfx run` runs a flow

    async def steps() -> list:
        return [step async for step in $graph.async_start(inputs=inputs)]

    result = extract_structured_result(asyncio.run(steps()))
    return str(result.get("result", result.get("text", "")))


if __name__ == "__main__":
    from langflow_cms import get_reporter

${read_arguments}    status = 0
    try:
        print(run($run_arguments))
    except Exception as exc:
        print(f"{FLOW_NAME} failed: {exc}", file=sys.stderr)
        status = 1
    finally:
        get_reporter().close()  # deliver the metrics before the process exits
    sys.exit(status)
''')
"""``run(text)`` and the ``__main__`` block, for a flow of one part (:data:`ONE_PART`) or of several
(:data:`SEVERAL_PARTS`: ``run(text, part)`` and ``--part NAME``)."""
ONE_PART = {
    "part_parameter": "",
    "summary": "Run the flow once and return its Chat Output text, as `lfx run` prints it.",
    "choose_graph": "",
    "graph": "graph",
    "read_arguments": "",
    "run_arguments": 'sys.argv[1] if len(sys.argv) > 1 else ""',
}
SEVERAL_PARTS = {
    "part_parameter": ", part: str | None = None",
    "summary": "Run the flow once, or one of its PARTS alone; return its Chat Output text, as `lfx run` "
    "prints it.",
    "choose_graph": "\n    flow = part_graph(part) if part else graph",
    "graph": "flow",
    "read_arguments": """\
    args, part = sys.argv[1:], None
    if args[:1] == ["--part"]:
        if len(args) < 2 or args[1] not in PARTS:
            sys.exit(f"{FLOW_NAME}: --part takes one of {', '.join(PARTS)}")
        part, args = args[1], args[2:]
""",
    "run_arguments": 'args[0] if args else "", part',
}

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

PART_GRAPH = '''

def part_graph(name: str) -> Graph:
    """One part of the flow alone, e.g. a RAG flow's ingestion.

    Use it instead of `graph`, not besides it: a component belongs to the graph built from it last.
    """
    part = Graph(flow_name=FLOW_NAME)
    for end in PARTS[name]:
        part.add_component(end)
    return part'''
"""``part_graph(name)``, in a script of a flow with several parts."""
