"""Runs know their version without typing it (issue #29, point 1): the rule that names a graph's version,
and the server-side cache that keeps the labels bounded."""

from __future__ import annotations

import asyncio
import copy

from langflow_cms.langflow import monitor as lf_monitor
from langflow_cms.langflow import server_versions, versioning


def flow(scale: float, version: str | None = None, x: float = 0.0, secret: str = "") -> dict:
    metric = {"flow_dimensions": {"value": {"version": version} if version else {}}}
    return {
        "nodes": [
            {
                "id": "Poet-1",
                "position": {"x": x, "y": 0},
                "selected": x > 0,
                "data": {
                    "type": "OfflinePoet",
                    "node": {
                        "template": {
                            "latency_scale": {"value": scale},
                            "api_key": {"value": secret, "password": True},
                        }
                    },
                },
            },
            {
                "id": "CmsMetric-1",
                "data": {"type": "ext:cms_monitor:CmsMetricComponent@official", "node": {"template": metric}},
            },
        ],
        "edges": [{"source": "Poet-1", "target": "CmsMetric-1", "sourceHandle": "a", "targetHandle": "b"}],
    }


def test_the_fingerprint_is_the_graph_not_its_layout_nor_its_secrets():
    base = versioning.fingerprint(flow(1.0))
    assert versioning.fingerprint(flow(1.0, x=120.0)) == base  # moved on the canvas, selected
    assert versioning.fingerprint(flow(1.0, secret="sk-123")) == base  # Langflow strips secrets from versions
    assert versioning.fingerprint(flow(2.0)) != base
    rewired = flow(1.0)
    rewired["edges"][0]["targetHandle"] = "c"
    assert versioning.fingerprint(rewired) != base


def test_the_oldest_saved_version_with_the_graph_names_it_and_a_hand_set_version_wins():
    v1, v2 = versioning.fingerprint(flow(1.0)), versioning.fingerprint(flow(2.0))
    history = [(1, v1), (2, v2), (3, v1)]  # v3: "Auto-saved before activating v2", holding v1's graph
    assert versioning.label(flow(1.0), history) == "v1"
    assert versioning.label(flow(2.0), history) == "v2"
    assert versioning.label(flow(3.0), history) == "draft-" + versioning.fingerprint(flow(3.0))[:6]
    assert versioning.label(flow(2.0, version="canary"), history) == "canary"


def test_the_server_labels_only_versions_that_run_and_at_most_three_drafts_per_flow(monkeypatch):
    saved = {"id-1": (1, flow(1.0))}
    reads = []

    async def read_versions(flow_id, known):
        reads.append(set(known))
        return set(saved), [(i, n, copy.deepcopy(d)) for i, (n, d) in saved.items() if i not in known]

    monkeypatch.setattr(server_versions, "read_versions", read_versions)
    now = [0.0]
    labels = server_versions.VersionLabels(clock=lambda: now[0])

    def label(data):
        return asyncio.run(labels.label(data, "flow-a"))

    assert label(flow(1.0)) == "v1"
    assert label(flow(1.0, x=5)) == "v1" and len(reads) == 1  # a known graph costs no query
    drafts = [label(flow(float(s))) for s in (2, 3, 4, 5)]
    assert drafts[:3] == [versioning.draft_label(versioning.fingerprint(flow(float(s)))) for s in (2, 3, 4)]
    assert drafts[3] == server_versions.DRAFT_OVERFLOW  # the fourth draft shares one label
    assert len(reads) == 5  # each new graph looks once ...
    assert label(flow(5.0)) == server_versions.DRAFT_OVERFLOW and len(reads) == 5  # ... then not again soon
    saved["id-2"] = (2, flow(5.0))  # the draft is saved as v2
    assert label(flow(6.0)) != "v2" and reads[-1] == {"id-1"}  # a new graph finds v2 at once (only its data)
    now[0] += server_versions.REFRESH_S
    assert label(flow(5.0)) == "v2" and len(reads) == 6  # the saved draft is v2 once REFRESH_S passed


def test_a_run_gets_the_servers_version_unless_the_flow_sets_one_or_has_no_room(monkeypatch):
    """The server's label reaches the run's dimensions (flow and node series alike), a hand-set
    ``version`` wins, and a flow with three dimensions of its own gets none (CMS's 10-dimension cap)."""
    from types import SimpleNamespace

    from langflow_cms.langflow import flow_settings

    monkeypatch.setattr(flow_settings, "monitor_mode", lambda: "annotated")

    async def found(data, flow_id):
        return "v7"

    monkeypatch.setattr(server_versions.LABELS, "label", found)

    def graph(dims):
        params = {"flow_dimensions": dims}
        metric = SimpleNamespace(
            vertex_type="ext:cms_monitor:CmsMetricComponent@official",
            custom_component=None,
            params=params,
            raw_params=params,
        )
        return SimpleNamespace(flow_name="poem", flow_id="f-1", vertices=[metric], raw_graph_data=flow(1.0))

    monitor = lf_monitor.FlowMonitor()

    def run_dims(dims):
        g = graph(dims)
        extra = asyncio.run(server_versions.version_dimension(g, "f-1", monitor))
        return monitor.start_run("run-" + str(len(dims)) + str(dims), g, extra=extra).dimensions

    assert run_dims({}) == {"version": "v7"}
    assert run_dims({"version": "canary"}) == {"version": "canary"}
    assert "version" not in run_dims({"a": "1", "b": "2", "c": "3"})
    unmonitored = SimpleNamespace(flow_name="x", flow_id="f-2", vertices=[], raw_graph_data=flow(1.0))
    assert asyncio.run(server_versions.version_dimension(unmonitored, "f-2", monitor)) == {}
