"""The query model of Alibaba's CloudMonitor data source for Grafana, and the panels built on it.

CMS 2019-01-01 has no dashboard API (console dashboards are made by hand), so the dashboard is a Grafana
one, for the data source plugin ``aliyun_cms_grafana_datasource`` (github.com/aliyun/aliyun-cms-grafana),
built with grafana-foundation-sdk's typed builders. The SDK has no model for that plugin's queries, so
:class:`CmsQuery` is one (a ``cogvariants.Dataquery``) and is registered with the SDK's runtime, which lets
``Dashboard.from_json`` read the generated JSON back.

What the plugin does with a query decides the shape of every target (read from its ``src/datasource.js``,
master 2a07a6e, not tried against a live Grafana):

* A target is ``{project, metric, period, group, dimensions: [str], ycol: [stat, ...], xcol: "timestamp",
  type: "timeserie", describe}``; each query is one ``QueryMetricList`` call, proxied by the plugin's
  backend to ``DescribeMetricList`` with the ``Dimensions`` string passed through unchanged.
* When ``project`` is a literal ``acs_customMetric_<uid>``, the plugin sends ``dimensions[0]`` as the
  ``dimension`` of ``{"groupId", "dimension"}`` *without* substituting template variables. When
  ``project`` contains a variable, it takes its general path: each ``dimensions`` entry is resolved
  (``$flow`` replaced) and sent inside ``[...]``. So the project here is always ``$namespace`` and each
  dimensions entry is the whole documented custom-metric selector,
  ``{"groupId":"$group","dimension":"flow=$flow&status=ok"}``, which arrives as
  ``Dimensions=[{"groupId":"0","dimension":"flow=poem&status=ok"}]``.
* It does not split one answer into several series for custom metrics and cannot sum series, so every
  target pins every dimension of one series, and variables are single-valued. Per-host aggregates
  (with ``instance``) are therefore shown for one ``$instance``; fleet-wide views use the fleet stream.
* Variables for custom-metric dimension values cannot be queried (the plugin's ``dimension(...)``
  variable query returns nothing for ``acs_customMetric``), so flow, node, ... are custom lists (from the
  options) or text boxes.

* Legends: the plugin names a series ``<describe>.<key>.<statistic>``, where ``<key>`` joins the values of
  the dimensions a ``QueryMetricMeta`` call (DescribeMetricMetaList) lists for the metric. For custom
  metrics that call lists nothing, so ``<key>`` is ``undefined``; ``describe`` is not template-substituted
  (a ``$model`` stays ``$model``). So every target has a plain ``describe`` (never a variable), and every
  panel has a ``renameByRegex`` transformation (:data:`LEGEND_REGEX`) that turns
  ``error rate.undefined.Average`` into ``error rate`` (one statistic per target) or ``fleet.undefined.P95``
  into ``fleet P95``. A legend the regex does not match (a plugin that fills ``<key>``) is left as it is.
* Each target costs two CMS calls per refresh: ``QueryMetricMeta`` (its empty answer is not cached) and
  ``QueryMetricList`` (one more per page of 1000 points).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cmodel
from grafana_foundation_sdk.models import dashboard as dmodel

from langflow_cms.contract import COMPONENT, REASON

DATASOURCE_TYPE = "aliyun_cms_grafana_datasource"
"""Plugin id of aliyun/aliyun-cms-grafana (its ``src/plugin.json``)."""

LEGEND_REGEX = r"^(.*)\.undefined\.([^.]+)$"
"""Matches the plugin's ``<describe>.undefined.<statistic>`` series names (see the module doc)."""
CALLS_PER_TARGET = 2
"""CMS calls the plugin makes per target and refresh: QueryMetricMeta + QueryMetricList."""

DS = "${datasource}"
VAR = {name: "$" + name for name in ("namespace", "group", "period", "flow", "instance", "node", "model")}
VAR[COMPONENT] = "$component"
VAR[REASON] = "$reason"


# --- the plugin's query model ---------------------------------------------------------------------------
class CmsQuery(cogvariants.Dataquery):
    """One target of ``aliyun_cms_grafana_datasource`` (the fields its query editor writes)."""

    def __init__(
        self,
        ref_id: str = "A",
        project: str = "",
        metric: str = "",
        period: str = "",
        group: str = "",
        dimensions: Sequence[str] = (),
        ycol: Sequence[str] = (),
        xcol: str = "timestamp",
        type_val: str = "timeserie",
        describe: str = "",
        datasource: dmodel.DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.project = project
        self.metric = metric
        self.period = period
        self.group = group
        self.dimensions = list(dimensions)
        self.ycol = list(ycol)
        self.xcol = xcol
        self.type_val = type_val
        self.describe = describe
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        """The target as the plugin stores it in dashboard JSON."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "project": self.project,
            "metric": self.metric,
            "period": self.period,
            "group": self.group,
            "dimensions": list(self.dimensions),
            "ycol": list(self.ycol),
            "target": list(self.ycol),  # the editor mirrors ycol here (src/query_ctrl.js)
            "xcol": self.xcol,
            "type": self.type_val,
            "describe": self.describe,
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_json` (unknown keys are ignored)."""
        ds = data.get("datasource")
        return cls(
            ref_id=str(data.get("refId", "A")),
            project=str(data.get("project", "")),
            metric=str(data.get("metric", "")),
            period=str(data.get("period", "")),
            group=str(data.get("group", "")),
            dimensions=[str(d) for d in data.get("dimensions") or []],
            ycol=[str(y) for y in data.get("ycol") or []],
            xcol=str(data.get("xcol", "timestamp")),
            type_val=str(data.get("type", "timeserie")),
            describe=str(data.get("describe", "")),
            datasource=dmodel.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
            hide=data.get("hide"),
        )


class CmsTarget(cogbuilder.Builder[CmsQuery]):
    """Builder of :class:`CmsQuery`, for ``Panel.with_target``."""

    def __init__(self, metric: str, *statistics: str) -> None:
        self._internal = CmsQuery(
            project=VAR["namespace"],
            metric=metric,
            period=VAR["period"],
            group=VAR["group"],
            ycol=statistics,
            datasource=dmodel.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DS),
        )

    def build(self) -> CmsQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def dimensions(self, dimensions: Mapping[str, str]) -> Self:
        """Select one series: every dimension it carries, values may be ``$variables``."""
        self._internal.dimensions = [selector(dimensions)]
        return self

    def describe(self, describe: str) -> Self:
        """Legend prefix of the series (the plugin names them ``<describe>.<key>.<statistic>``)."""
        self._internal.describe = describe
        return self


def selector(dimensions: Mapping[str, str], group: str = VAR["group"]) -> str:
    """The dimensions entry of a target: CMS's custom-metric selector ``{"groupId", "dimension"}`` with
    ``k=v&...`` keys in ascending order (cms-api.md §6.2)."""
    dimension = "&".join(f"{key}={dimensions[key]}" for key in sorted(dimensions))
    return json.dumps({"groupId": group, "dimension": dimension}, separators=(",", ":"))


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=CmsQuery.from_json)
)


# --- panels ------------------------------------------------------------------------------------------------
def timeseries_panel(
    title: str, unit: str, description: str, width: int = 12, height: int = 8
) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(dmodel.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DS))
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(True)
        .legend(
            gcommon.VizLegendOptions()
            .show_legend(True)
            .display_mode(cmodel.LegendDisplayMode.LIST)
            .placement(cmodel.LegendPlacement.BOTTOM)
        )
        .tooltip(
            gcommon.VizTooltipOptions().mode(cmodel.TooltipDisplayMode.MULTI).sort(cmodel.SortOrder.NONE)
        )
    )


def with_targets(panel: timeseries.Panel, targets: Iterable[CmsTarget]) -> timeseries.Panel:
    """Add the targets, and the transformation that makes the plugin's series names readable legends."""
    several = False
    for index, target in enumerate(targets):
        built = target.build()
        if "$" in built.describe or not built.describe:
            raise ValueError(f"{built.metric}: a legend needs a plain describe, not {built.describe!r}")
        several = several or len(built.ycol) > 1
        panel.with_target(target.ref_id(_ref(index)))
    rename = {"regex": LEGEND_REGEX, "renamePattern": "$1 $2" if several else "$1"}
    return panel.with_transformation(dmodel.DataTransformerConfig(id_val="renameByRegex", options=rename))


def _ref(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < 26 else letters[index // 26 - 1] + letters[index % 26]
