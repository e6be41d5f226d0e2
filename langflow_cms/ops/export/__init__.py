"""Export a Langflow flow (JSON) to a standalone, readable Python script that builds the same graph in code.

Teams prototype on the canvas and deploy code, and Langflow has no flow-to-code export. The script this
module writes is the flow as a program: built-in components are imported from their lfx modules, custom-code
components (our CMS Metric and Timer nodes included) are embedded as classes from the source saved in the
flow, every node keeps its id, connections are ``.set(...)`` calls and field values are those of the flow
(only the ones that differ from the component's defaults). Monitoring needs no extra code: the CMS Metric and
Timer nodes are nodes of the exported graph, so the tracing service times it as it times ``lfx run``.

The export is static: the flow's code is parsed, never executed, so exporting an untrusted flow is safe.
Credentials never reach the script: a secret field becomes an environment look-up.

Four modules: ``flow`` reads the flow (nodes, edges, their order), ``code`` writes Python (literals, the
custom components' code, the merged imports), ``script`` assembles the script and ``templates`` holds its
fixed parts.
"""

from langflow_cms.ops.export.flow import ExportError
from langflow_cms.ops.export.script import export_flow

__all__ = ["ExportError", "export_flow"]
