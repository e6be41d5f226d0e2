"""Dashboards as code: a Grafana dashboard for the Alibaba CloudMonitor data source and its provisioning.

CMS 2019-01-01 has no dashboard API, so the dashboard is a Grafana one, built with grafana-foundation-sdk's
typed builders; the data source plugin's query model, and why every target has the shape it has, are in
:mod:`langflow_cms.ops.cms_datasource`. Three rows: the fleet (CMS computes the percentiles over every host),
one host (exact counts), and the reporter's self-health.

Panel count stays at most :data:`MAX_PANELS` (the plugin's maintainers suggest about 20 panels per
dashboard, beyond which CMS read throttling blanks panels: aliyun-cms-grafana#18).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dmodel

from langflow_cms import REPOSITORY_URL
from langflow_cms.contract import (
    COMPONENT,
    CUSTOM_NAMESPACE_PREFIX,
    DIRECTION,
    ENV,
    ERROR,
    FLEET_ERROR_METRIC,
    FLEET_FLOW_METRIC,
    FLOW,
    FLOW_METRIC,
    HEALTH_COUNTERS,
    HEALTH_METRICS,
    HEALTH_PREFIX,
    INSTANCE,
    MODEL,
    NODE,
    NODE_METRIC,
    OK,
    PERIODS,
    REASON,
    STATUS,
    TOKENS_METRIC,
)
from langflow_cms.ops.cms_datasource import (
    DATASOURCE_TYPE,
    DS,
    VAR,
    CmsTarget,
    timeseries_panel,
    with_targets,
)

DATASOURCE_NAME = "Alibaba Cloud CloudMonitor"
DATASOURCE_UID = "langflow-cms-cms"
"""uid given to the provisioned data source; the dashboard's ``datasource`` variable defaults to it."""
DASHBOARD_UID = "langflow-cms"
MAX_PANELS = 20
"""aliyun-cms-grafana's maintainers: about 20 panels per dashboard before CMS read throttling (#18)."""
MAX_LISTED = 10
"""At most this many nodes or models get their own target in the comparison panels."""
CMS_ENDPOINT = "http://metrics.cn-hangzhou.aliyuncs.com"
"""The plugin config page's default URL (its backend calls metrics.cn-hangzhou.aliyuncs.com regardless)."""
DROP_REASONS = (
    "outbox_full",
    "spool_full",
    "inbox_full",
    "exit_deadline",
    "after_close",
    "metric_cap",
    "scope_cap",
    "unbound_credentials",
)
"""``reason`` values of ``langflow_cms_dropped`` as the reporter writes them (``dropped:<reason>`` counters in
reporter.py, delivery/ and pipeline/ at the time of writing); the ``$reason`` variable lists them."""


def health_metric(name: str) -> str:
    """The contract's self-health metric ``langflow_cms_<name>`` (KeyError for a name it does not have)."""
    metric = HEALTH_PREFIX + name
    if metric not in HEALTH_METRICS:
        raise KeyError(f"{metric} is not a self-health metric of contract.py")
    return metric


# --- the dashboard --------------------------------------------------------------------------------------
def _choice(name: str, label: str, values: Sequence[str], default: str, description: str) -> Any:
    """A custom list when values are known, else a text box (custom-metric dimensions cannot be queried)."""
    if values:
        variable = gdash.CustomVariable(name).values(",".join(values))
        first = values[0]
        variable.current(dmodel.VariableOption(text=first, value=first, selected=True))
    else:
        variable = gdash.TextBoxVariable(name).default_value(default)
        variable.current(dmodel.VariableOption(text=default, value=default, selected=True))
    return variable.label(label).description(description)


def build_dashboard(
    *,
    user_id: str | None = None,
    group_id: str = "0",
    datasource_uid: str = DATASOURCE_UID,
    flows: Sequence[str] = (),
    instances: Sequence[str] = (),
    nodes: Mapping[str, str] | None = None,
    models: Sequence[str] = (),
    env: str | None = None,
    title: str = "Langflow on CloudMonitor",
    uid: str = DASHBOARD_UID,
) -> dict[str, Any]:
    """The Grafana dashboard (JSON model, as a dict) for the CloudMonitor data source.

    ``user_id`` is the Alibaba Cloud account id: the ``namespace`` variable then defaults to
    ``acs_customMetric_<user_id>``; without it the variable asks the data source (``namespace(...)``
    lists the custom namespace of the account the data source is configured with). ``group_id`` is the
    CMS application group the metrics were reported to ("0" by default). ``flows``, ``instances`` and
    ``models`` fill the variables' lists (else they are text boxes); ``nodes`` maps node ids (the
    ``node`` dimension) to their ``component`` and adds a panel comparing their P95 (at most
    :data:`MAX_LISTED`). ``env`` is added to every selector when the reporter sets ``LANGFLOW_CMS_ENV``.
    """
    nodes = dict(nodes or {})
    extra = {ENV: env} if env else {}
    builder = (
        gdash.Dashboard(title)
        .uid(uid)
        .description(
            "Langflow flow metrics in Alibaba Cloud CloudMonitor (langflow-cms). Generated by "
            f"`langflow-cms dashboard grafana`; see {REPOSITORY_URL}/docs/dashboards.md."
        )
        .tags(["langflow", "cloudmonitor", "langflow-cms"])
        .editable()
        .time("now-6h", "now")
        .refresh("5m")
        .tooltip(dmodel.DashboardCursorSync.CROSSHAIR)
        .variables(_variables(user_id, group_id, datasource_uid, flows, instances, nodes, models))
    )
    for row_title, row in (
        ("Fleet: $flow (all hosts, CMS computes the percentiles)", _fleet_row(extra)),
        ("Per host: $flow on $instance (exact counts)", _host_row(extra, nodes, models)),
        ("Reporter self-health: $instance", _health_row(extra)),
    ):
        builder.with_row(gdash.Row(row_title).collapsed(False))
        for panel in row:
            builder.with_panel(panel)
    board = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    panel_id = 0
    for panel in board["panels"]:
        for item in [panel, *panel.get("panels", [])]:
            panel_id += 1
            item["id"] = panel_id
    count = len(panels(board))
    if count > MAX_PANELS:
        raise ValueError(
            f"{count} panels: more than {MAX_PANELS} get throttled by CMS (aliyun-cms-grafana#18)"
        )
    return board


def _namespace(user_id: str | None) -> Any:
    """The ``namespace`` variable: the account's custom namespace when the account id is known, else asked
    of the data source."""
    namespace: Any
    if user_id:
        value = CUSTOM_NAMESPACE_PREFIX + user_id
        namespace = gdash.TextBoxVariable("namespace").default_value(value)
        namespace.current(dmodel.VariableOption(text=value, value=value, selected=True))
    else:
        namespace = (
            gdash.QueryVariable("namespace")
            .datasource(dmodel.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DS))
            .query(f"namespace({CUSTOM_NAMESPACE_PREFIX.rstrip('_')})")
            .refresh(dmodel.VariableRefresh.ON_DASHBOARD_LOAD)
        )
    return namespace.label("Namespace").description(
        "acs_customMetric_<account id>. Keep it a variable: the data source substitutes variables in "
        "the dimensions only when the namespace is one."
    )


def _variables(
    user_id: str | None,
    group_id: str,
    datasource_uid: str,
    flows: Sequence[str],
    instances: Sequence[str],
    nodes: Mapping[str, str],
    models: Sequence[str],
) -> list[Any]:
    """The dashboard's variables, in the order Grafana shows them."""
    group = gdash.TextBoxVariable("group").default_value(group_id).label("Group id")
    group.current(dmodel.VariableOption(text=group_id, value=group_id, selected=True))
    period = gdash.CustomVariable("period").values(",".join(str(p) for p in PERIODS)).label("Period (s)")
    period.current(dmodel.VariableOption(text=str(PERIODS[0]), value=str(PERIODS[0]), selected=True))
    period.description("60 s or 300 s: the only periods CMS computes for raw points; 1000 points per query.")
    return [
        gdash.DatasourceVariable("datasource")
        .type(DATASOURCE_TYPE)
        .label("CloudMonitor")
        .current(dmodel.VariableOption(text=datasource_uid, value=datasource_uid, selected=True)),
        _namespace(user_id),
        group,
        period,
        _choice(
            "flow",
            "Flow",
            flows,
            "",
            f"The flow dimension: the flow's name ({REPOSITORY_URL}/docs/metrics.md).",
        ),
        _choice(
            "instance",
            "Instance",
            instances,
            "",
            "A reporting process or host (<hostname>-<pid> or LANGFLOW_CMS_INSTANCE); per-host panels only.",
        ),
        _choice("node", "Node", list(nodes), "", "A node (vertex) id, e.g. Prompt-x1Y2z."),
        _choice(
            COMPONENT,
            "Component",
            sorted(set(nodes.values())),
            "",
            "The node's component type (part of the node series).",
        ),
        _choice("model", "Model", models, "", "An LLM model name of the tokens metric."),
        _choice(REASON, "Drop reason", DROP_REASONS, "", "Why langflow_cms_dropped entries were dropped."),
    ]


def _fleet_row(extra: Mapping[str, str]) -> list[timeseries.Panel]:
    """The fleet stream: raw points from every host, percentiles computed by CMS."""
    flow = VAR["flow"]
    return [
        with_targets(
            timeseries_panel(
                "Flow latency P50 / P95 / P99 (fleet)",
                "ms",
                f"{FLEET_FLOW_METRIC} {{flow, status=ok}}: one raw point per sampled run; CMS computes the "
                "percentiles over every host.",
                width=24,
            ),
            [
                CmsTarget(FLEET_FLOW_METRIC, "P50", "P95", "P99")
                .dimensions({FLOW: flow, STATUS: OK, **extra})
                .describe("fleet")
            ],
        ),
        with_targets(
            timeseries_panel(
                "Error rate (fleet)",
                "percentunit",
                f"{FLEET_ERROR_METRIC} Average: 1 per failed run, 0 per ok run, so the mean is the rate.",
            ).min(0),
            [
                CmsTarget(FLEET_ERROR_METRIC, "Average")
                .dimensions({FLOW: flow, **extra})
                .describe("error rate")
            ],
        ),
        with_targets(
            timeseries_panel(
                "Sampled runs (fleet)",
                "short",
                f"{FLEET_ERROR_METRIC} SampleCount: runs in the fleet stream. It is sampled "
                f"({health_metric('fleet_sample_rate')}); exact counts are per host below.",
            ),
            [CmsTarget(FLEET_ERROR_METRIC, "SampleCount").dimensions({FLOW: flow, **extra}).describe("runs")],
        ),
    ]


def _host_row(
    extra: Mapping[str, str], nodes: Mapping[str, str], models: Sequence[str]
) -> list[timeseries.Panel]:
    """One host's aggregates (``$instance``): exact counts, node latency, tokens."""
    flow, instance, node, component, model = (
        VAR[k] for k in ("flow", "instance", "node", COMPONENT, "model")
    )
    row = [
        with_targets(
            timeseries_panel(
                "Runs and errors on $instance (exact)",
                "short",
                f"{FLOW_METRIC} SampleCount per status. Exact, but per host: the data source cannot sum "
                "series, so the fleet total is the sum over instances.",
            ),
            [
                CmsTarget(FLOW_METRIC, "SampleCount")
                .dimensions({FLOW: flow, INSTANCE: instance, STATUS: status, **extra})
                .describe(f"{status} runs")
                for status in (OK, ERROR)
            ],
        )
    ]
    node_dims = {FLOW: flow, INSTANCE: instance, STATUS: OK, **extra}
    row.append(
        with_targets(
            timeseries_panel(
                "Node $node P50 / P95 / P99 on $instance",
                "ms",
                f"{NODE_METRIC} {{node=$node, component=$component}}: build time of one node.",
            ),
            [
                CmsTarget(NODE_METRIC, "P50", "P95", "P99")
                .dimensions({**node_dims, NODE: node, COMPONENT: component})
                .describe("node")
            ],
        )
    )
    if nodes:
        row.append(
            with_targets(
                timeseries_panel(
                    "Slowest nodes: P95 per node on $instance",
                    "ms",
                    f"{NODE_METRIC} P95, one query per listed node (at most {MAX_LISTED}).",
                    width=24,
                ),
                [
                    CmsTarget(NODE_METRIC, "P95")
                    .dimensions({**node_dims, NODE: node_id, COMPONENT: nodes[node_id]})
                    .describe(node_id)
                    for node_id in list(nodes)[:MAX_LISTED]
                ],
            )
        )
    token_models = list(models[:MAX_LISTED]) if models else [model]
    row.append(
        with_targets(
            timeseries_panel(
                "Tokens per model on $instance" if models else "Tokens of $model on $instance",
                "short",
                f"{TOKENS_METRIC} Sum per model and direction (input = prompt, output = completion).",
                width=24 if nodes else 12,
            ),
            [
                CmsTarget(TOKENS_METRIC, "Sum")
                .dimensions({FLOW: flow, INSTANCE: instance, MODEL: name, DIRECTION: direction, **extra})
                .describe(f"{name} {direction}" if models else direction)
                for name in token_models
                for direction in ("input", "output")
            ],
        )
    )
    return row


REASONED = ("dropped", "spool_errors")
"""The health counters sent per ``reason`` only (no series without one)."""


def _health_row(extra: Mapping[str, str]) -> list[timeseries.Panel]:
    """The reporter's self-health metrics on ``$instance``."""
    health = {INSTANCE: VAR["instance"], **extra}
    return [
        with_targets(
            timeseries_panel(
                "Reporter counters: " + ", ".join(HEALTH_COUNTERS) + " ($reason)",
                "short",
                "Increase per minute of the reporter's counters; anything above 0 for failed or dropped "
                "means lost data. dropped and spool_errors are sent per reason, only when they grew: pick "
                "one in $reason.",
            ),
            [
                CmsTarget(health_metric(name), "Sum")
                .dimensions({**health, REASON: VAR[REASON]} if name in REASONED else health)
                .describe(name)
                for name in HEALTH_COUNTERS
            ],
        ),
        with_targets(
            timeseries_panel(
                "Seconds since the last accepted call",
                "s",
                f"{health_metric('last_success_age_s')} Maximum; alarm above 300.",
            ),
            [CmsTarget(health_metric("last_success_age_s"), "Maximum").dimensions(health).describe("age")],
        ),
        with_targets(
            timeseries_panel(
                "Entries waiting (memory, spool)", "short", "Outbox and disk spool backlogs, Maximum."
            ),
            [
                CmsTarget(health_metric(name), "Maximum").dimensions(health).describe(name)
                for name in ("queued", "spooled")
            ],
        ),
        with_targets(
            timeseries_panel(
                "Fleet sample rate",
                "percentunit",
                "Share of runs sent to the fleet stream (Minimum): divide sampled runs by it.",
            ),
            [CmsTarget(health_metric("fleet_sample_rate"), "Minimum").dimensions(health).describe("rate")],
        ),
    ]


def panels(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's data panels (rows excluded, panels inside rows included)."""
    found: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def targets(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every query of every data panel."""
    return [target for panel in panels(board) for target in panel.get("targets", [])]


# --- provisioning ---------------------------------------------------------------------------------------
def datasource_provisioning(
    *,
    user_id: str | None = None,
    name: str = DATASOURCE_NAME,
    uid: str = DATASOURCE_UID,
    url: str = CMS_ENDPOINT,
    access_key_env: str = "ALIBABA_CLOUD_ACCESS_KEY_ID",
    secret_env: str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    user_id_env: str = "ALIBABA_CLOUD_ACCOUNT_ID",
) -> str:
    """Grafana data source provisioning YAML (``provisioning/datasources/*.yaml``) for the CMS plugin.

    Field names are the plugin's: ``jsonData.userId`` (the account id, used to list
    ``acs_customMetric_<uid>``), ``secureJsonData.cmsAccessKey`` / ``cmsSecretKey`` (its backend reads
    these). The keys are never written: they are ``$VAR`` references that Grafana expands from its own
    environment when it provisions. ``user_id`` is written as is when given, else read from
    ``user_id_env`` too.
    """
    account = _yaml_string(user_id) if user_id else _yaml_string(f"${{{user_id_env}}}")
    lines = [
        "# Grafana data source provisioning for Alibaba Cloud CloudMonitor (langflow-cms).",
        "# Plugin: aliyun_cms_grafana_datasource (github.com/aliyun/aliyun-cms-grafana), unsigned:",
        "#   GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=aliyun_cms_grafana_datasource",
        f"# Grafana expands ${access_key_env} and ${secret_env} from its environment at startup.",
        "apiVersion: 1",
        "datasources:",
        f"  - name: {_yaml_string(name)}",
        f"    type: {DATASOURCE_TYPE}",
        f"    uid: {_yaml_string(uid)}",
        "    access: proxy",
        f"    url: {_yaml_string(url)}",
        "    editable: true",
        "    jsonData:",
        f"      userId: {account}",
        "    secureJsonData:",
        f"      cmsAccessKey: {_yaml_string(f'${{{access_key_env}}}')}",
        f"      cmsSecretKey: {_yaml_string(f'${{{secret_env}}}')}",
    ]
    return "\n".join(lines) + "\n"


def _yaml_string(value: str) -> str:
    """A double-quoted YAML scalar (JSON string syntax is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def write_grafana(output: Path, datasource_output: Path | None = None, **options: Any) -> list[Path]:
    """Write the dashboard JSON to ``output`` (and the provisioning YAML to ``datasource_output``).

    ``options`` go to :func:`build_dashboard`; ``user_id`` and ``datasource_uid`` (as ``uid``) also go to
    :func:`datasource_provisioning`. Returns the paths written.
    """
    board = build_dashboard(**options)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(board, indent=2) + "\n", encoding="utf-8")
    written = [output]
    if datasource_output is not None:
        datasource_output = Path(datasource_output)
        datasource_output.parent.mkdir(parents=True, exist_ok=True)
        datasource_output.write_text(
            datasource_provisioning(
                user_id=options.get("user_id"), uid=options.get("datasource_uid", DATASOURCE_UID)
            ),
            encoding="utf-8",
        )
        written.append(datasource_output)
    return written
