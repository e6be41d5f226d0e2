"""The Grafana dashboard: it loads with grafana-foundation-sdk's model, names only contract metrics and
statistics, and every panel query is answered by the emulator through DescribeMetricList."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from aliyunsdkcms.request.v20190101.DescribeMetricListRequest import DescribeMetricListRequest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.client import AcsClient
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from langflow_cms import contract
from langflow_cms.dev import emulator_client
from langflow_cms.emulator import Emulator
from langflow_cms.ops import dashboard
from langflow_cms.ops.cms_datasource import CmsQuery
from langflow_cms.ops.dashboard import (
    DATASOURCE_TYPE,
    MAX_PANELS,
    build_dashboard,
    datasource_provisioning,
    panels,
    targets,
    write_grafana,
)
from langflow_cms.ops.query import describe_metric_list, parse_dimension_string

AGGREGATED_STATISTICS = {"SampleCount", "Sum", "Minimum", "Maximum", "Average", "P50", "P90", "P95", "P99"}
"""What the reporter sends for every aggregated series (docs/metrics.md)."""
RAW_STATISTICS = {
    "Average", "Maximum", "Minimum", "Sum", "SampleCount", "SumPerSecond", "CountPerSecond", "LastValue",
    *(f"P{p}" for p in (10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 98, 99)),
}  # fmt: skip
"""What CMS computes from raw (Type=0) points (cms-api.md §6.1)."""
CONTRACT_METRICS = (
    set(contract.AGGREGATED_METRICS) | set(contract.HEALTH_METRICS) | set(contract.FLEET_METRICS)
)

OPTIONS = {
    "user_id": "1234567890",
    "flows": ["poem", "qa"],
    "instances": ["host-1", "host-2"],
    "nodes": {"Prompt-x1Y2z": "Prompt_Template", "OfflinePoet-poem1": "OfflinePoet"},
    "models": ["qwen-max"],
}


@pytest.fixture(scope="module")
def board() -> dict:
    return build_dashboard(**OPTIONS)


def test_loads_with_the_sdk_model_and_round_trips(board):
    model = Dashboard.from_json(board)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == board
    queries = [t for p in model.panels if p.type_val != "row" for t in p.targets]
    assert queries and all(isinstance(q, CmsQuery) for q in queries)
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36


def test_panel_count_stays_in_the_recommended_range(board):
    found = panels(board)
    assert 6 <= len(found) <= MAX_PANELS
    assert len(panels(build_dashboard())) <= len(found)
    ids = [p["id"] for p in board["panels"]] + [q["id"] for p in board["panels"] for q in p.get("panels", [])]
    assert len(ids) == len(set(ids))


def test_too_many_panels_are_refused(monkeypatch):
    monkeypatch.setattr(dashboard, "MAX_PANELS", 5)
    with pytest.raises(ValueError, match="panels"):
        build_dashboard()


def test_every_query_names_a_contract_metric_and_a_statistic_it_has(board):
    for panel in panels(board):
        assert panel["datasource"]["type"] == DATASOURCE_TYPE
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
    for target in targets(board):
        assert target["metric"] in CONTRACT_METRICS
        allowed = RAW_STATISTICS if target["metric"] in contract.FLEET_METRICS else AGGREGATED_STATISTICS
        assert target["ycol"] and set(target["ycol"]) <= allowed, target
        assert target["xcol"] == "timestamp" and target["type"] == "timeserie"
        assert target["project"] == "$namespace"  # a literal namespace would stop variable substitution
        assert len(target["dimensions"]) == 1


def test_selectors_pin_the_dimensions_the_reporter_writes(board):
    for target in targets(board):
        selector = json.loads(target["dimensions"][0])
        assert set(selector) == {"groupId", "dimension"} and selector["groupId"] == "$group"
        keys = [part.partition("=")[0] for part in selector["dimension"].split("&")]
        assert keys == sorted(keys)
        metric = target["metric"]
        if metric in contract.FLEET_METRICS:
            assert contract.INSTANCE not in keys and contract.FLOW in keys
        else:
            assert contract.INSTANCE in keys
        if metric in ("langflow_cms_dropped", "langflow_cms_spool_errors"):  # per reason (docs/metrics.md)
            assert keys == [contract.INSTANCE, contract.REASON]
        elif metric in contract.HEALTH_METRICS:
            assert keys == [contract.INSTANCE]


def test_the_issue_panels_are_there(board):
    by_metric: dict[str, set[str]] = {}
    for target in targets(board):
        by_metric.setdefault(target["metric"], set()).update(target["ycol"])
    assert {"P50", "P95", "P99"} <= by_metric[contract.FLEET_FLOW_METRIC]
    assert "Average" in by_metric[contract.FLEET_ERROR_METRIC]
    assert "SampleCount" in by_metric[contract.FLOW_METRIC]
    assert "P95" in by_metric[contract.NODE_METRIC]
    assert by_metric[contract.TOKENS_METRIC] == {"Sum"}
    assert by_metric[contract.HEALTH_PREFIX + "failed"] == {"Sum"}
    assert by_metric[contract.HEALTH_PREFIX + "dropped"] == {"Sum"}
    assert by_metric[contract.HEALTH_PREFIX + "last_success_age_s"] == {"Maximum"}
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"flow", "node", "namespace", "group", "period", "reason"} <= names


def test_variables_follow_the_options(board):
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["namespace"]["query"] == contract.CUSTOM_NAMESPACE_PREFIX + OPTIONS["user_id"]
    assert variables["flow"]["type"] == "custom" and variables["flow"]["query"] == "poem,qa"
    assert variables["group"]["query"] == "0"
    assert variables["period"]["query"] == ",".join(str(p) for p in contract.PERIODS)
    assert all(not v.get("multi") and not v.get("includeAll") for v in variables.values())

    bare = {v["name"]: v for v in build_dashboard(group_id="42")["templating"]["list"]}
    assert (
        bare["namespace"]["type"] == "query" and bare["namespace"]["query"] == "namespace(acs_customMetric)"
    )
    assert bare["flow"]["type"] == "textbox" and bare["group"]["query"] == "42"


def test_env_is_added_to_every_selector():
    for target in targets(build_dashboard(env="prod")):
        assert "env=prod" in json.loads(target["dimensions"][0])["dimension"]


def test_provisioning_yaml_names_the_plugin_fields_and_no_secret():
    text = datasource_provisioning(user_id="1234567890")
    assert f"type: {DATASOURCE_TYPE}" in text
    assert 'userId: "1234567890"' in text
    assert 'cmsAccessKey: "${ALIBABA_CLOUD_ACCESS_KEY_ID}"' in text
    assert 'cmsSecretKey: "${ALIBABA_CLOUD_ACCESS_KEY_SECRET}"' in text
    assert 'userId: "${ALIBABA_CLOUD_ACCOUNT_ID}"' in datasource_provisioning()
    yaml = pytest.importorskip("yaml")
    source = yaml.safe_load(text)["datasources"][0]
    assert source["type"] == DATASOURCE_TYPE and source["uid"] == dashboard.DATASOURCE_UID
    assert set(source["secureJsonData"]) == {"cmsAccessKey", "cmsSecretKey"}


def test_write_grafana(tmp_path):
    out, ds = tmp_path / "d" / "langflow.json", tmp_path / "ds.yaml"
    assert write_grafana(out, ds, user_id="42") == [out, ds]
    assert json.loads(out.read_text())["uid"] == dashboard.DASHBOARD_UID
    assert 'userId: "42"' in ds.read_text()
    assert write_grafana(tmp_path / "only.json") == [tmp_path / "only.json"]


# --- every query against the emulator -------------------------------------------------------------------
VALUES = {
    "group": "0",
    "flow": "poem",
    "instance": "host-1",
    "node": "Prompt-x1Y2z",
    "component": "Prompt_Template",
    "model": "qwen-max",
    "reason": "outbox_full",
}


def resolve(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], text)


@pytest.fixture(scope="module")
def client() -> AcsClient:
    return emulator_client()


def put(client: AcsClient, emulator: Emulator, items: list[dict]) -> None:
    for start in range(0, len(items), 20):  # the emulator allows 21 entries per call
        request = PutCustomMetricRequest()
        request.set_endpoint(emulator.endpoint)
        request.set_MetricLists(items[start : start + 20])
        assert json.loads(client.do_action_with_exception(request))["Code"] == "200"


def as_the_plugin_sends_it(target: dict, values: dict[str, str], start_ms: int, end_ms: int) -> dict:
    """The DescribeMetricList parameters the data source makes of a target whose project is a variable.

    aliyun-cms-grafana master 2a07a6e: src/datasource.js resolves each ``dimensions`` entry and joins them
    into ``[...]`` (``&``, ``{``, ``}`` URL-escaped, so decoded as is), asks for ``Length=1000``;
    pkg/datasource.go passes Project, Metric, Dimensions, Period, Length, StartTime, EndTime through.
    """
    return {
        "Namespace": resolve(target["project"], values),
        "MetricName": target["metric"],
        "Period": resolve(target["period"], values),
        "Dimensions": "[" + ",".join(resolve(d, values) for d in target["dimensions"]) + "]",
        "Length": "1000",
        "StartTime": str(start_ms),
        "EndTime": str(end_ms),
    }


def test_every_panel_query_is_answered_by_the_emulator(client):
    with Emulator(port=0) as emulator:
        board = build_dashboard(**{**OPTIONS, "user_id": emulator.user_id})
        namespace = {v["name"]: v for v in board["templating"]["list"]}["namespace"]["query"]
        assert namespace == emulator.namespace
        values = {**VALUES, "namespace": namespace}
        now = int(time.time() // 300 * 300 * 1000) - 600_000  # a 300 s boundary, ten minutes ago
        selected = {
            (t["metric"], json.dumps(json.loads(resolve(t["dimensions"][0], values)), sort_keys=True))
            for t in targets(board)
        }
        items = []
        for metric, selector_json in sorted(selected):
            selector = json.loads(selector_json)
            entry = {
                "GroupId": selector["groupId"],
                "MetricName": metric,
                "Dimensions": json.dumps(parse_dimension_string(selector["dimension"])),
            }
            if metric in contract.FLEET_METRICS:  # raw points: CMS computes the statistics
                for i, value in enumerate((120.0, 80.0, 450.0, 95.0)):
                    items.append(
                        {
                            **entry,
                            "Type": "0",
                            "Time": str(now + i * 1000),
                            "Values": json.dumps({"value": value}),
                        }
                    )
            else:
                stats = {"SampleCount": 4, "Sum": 745.0, "Minimum": 80.0, "Maximum": 450.0, "Average": 186.25}
                stats.update(P50=107.5, P90=450.0, P95=450.0, P99=450.0)
                for period in contract.PERIODS:
                    item = {**entry, "Type": "1", "Period": str(period), "Time": str(now)}
                    items.append({**item, "Values": json.dumps(stats)})
        put(client, emulator, items)

        missing = []
        for period in contract.PERIODS:
            for target in targets(board):
                selector = json.loads(resolve(target["dimensions"][0], values))
                assert (
                    resolve(target["project"], values) == contract.CUSTOM_NAMESPACE_PREFIX + emulator.user_id
                )
                points = describe_metric_list(
                    client,
                    user_id=emulator.user_id,
                    metric_name=target["metric"],
                    dimensions=parse_dimension_string(selector["dimension"]),
                    group_id=selector["groupId"],
                    period=int(resolve(target["period"], {**values, "period": str(period)})),
                    start_ms=now - 3_600_000,
                    end_ms=now + 600_000,
                    endpoint=emulator.endpoint,
                )
                assert points, (target["metric"], selector, period)
                for statistic in target["ycol"]:
                    if not all(statistic in point["values"] for point in points):
                        missing.append((target["metric"], statistic, period))

                request = DescribeMetricListRequest()
                request.set_endpoint(emulator.endpoint)
                params = as_the_plugin_sends_it(
                    target, {**values, "period": str(period)}, now - 3_600_000, now + 600_000
                )
                for key, value in params.items():
                    getattr(request, f"set_{key}")(value)
                body = json.loads(client.do_action_with_exception(request))
                assert body["Code"] == "200", body
                datapoints = json.loads(body["Datapoints"])
                assert datapoints, (target["metric"], params)
                for statistic in target["ycol"]:
                    if not all(statistic in point for point in datapoints):
                        missing.append((target["metric"], statistic, period, "as the plugin sends it"))
        assert not missing, f"statistics the emulator did not answer: {sorted(set(missing))}"


def test_health_metrics_come_from_the_contract():
    assert dashboard.health_metric("failed") in contract.HEALTH_METRICS
    with pytest.raises(KeyError):
        dashboard.health_metric("not_a_health_metric")


# --- legends, as aliyun-cms-grafana names series ------------------------------------------------------------
# Its src/datasource.js (master 2a07a6e), query(): ``describe = !t.describe ? t.describe : t.describe + "."``
# and each series is ``target: describe + key + "." + ycol``, where ``key`` joins the values of the dimensions
# QueryMetricMeta lists for the metric, which is nothing for a custom metric: ``dataPoint[undefined]``, the
# string "undefined" once concatenated. ``describe`` is used as stored (no template substitution). Grafana's
# renameByRegex transformation then applies ``name.replace(new RegExp(regex), renamePattern)``.


def plugin_series_name(target: dict) -> str:
    describe = target.get("describe")
    prefix = "undefined" if describe is None else (describe + "." if describe else "")
    return prefix + "undefined" + "." + "{statistic}"


def grafana_rename(name: str, transformations: list[dict]) -> str:
    for step in transformations:
        if step.get("id") == "renameByRegex":
            pattern = re.sub(r"\$(\d)", r"\\\1", step["options"]["renamePattern"])
            name = re.sub(step["options"]["regex"], pattern, name, count=1)
    return name


@pytest.mark.parametrize("options", [OPTIONS, {"user_id": "1"}, {}], ids=["lists", "text-boxes", "no-user"])
def test_every_legend_is_readable_with_the_plugin_as_it_is(options):
    """Issue #27 point 9 (failed before: `undefined.P95`, `runs.undefined.SampleCount`, `$model.input...`)."""
    board = build_dashboard(**options)
    for panel in (p for p in board["panels"] if p.get("type") != "row"):
        legends = []
        for target in panel["targets"]:
            for statistic in target["ycol"]:
                name = plugin_series_name(target).format(statistic=statistic)
                legends.append(grafana_rename(name, panel.get("transformations", [])))
        assert all(
            legend.strip() and "undefined" not in legend and "$" not in legend for legend in legends
        ), (
            panel["title"],
            legends,
        )
        assert len(set(legends)) == len(legends), (panel["title"], legends)  # each series its own name


def test_the_docs_state_api_calls_per_refresh_and_grafana_versions():
    board = build_dashboard()
    targets = sum(len(p["targets"]) for p in board["panels"] if p.get("type") != "row")
    doc = (Path(__file__).resolve().parents[1] / "docs" / "dashboards.md").read_text()
    assert f"{targets} queries" in doc and f"{2 * targets} CloudMonitor calls per refresh" in doc
    for needed in ("| 7.x to 10.x |", "| 11.x |", "| 12.x |", "angular_support_enabled", "### Grafana 12"):
        assert needed in doc, needed
