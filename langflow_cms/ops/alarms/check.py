"""``check``: every alarm's series read back from CMS and evaluated the way CMS does (OK, ALARM,
INSUFFICIENT_DATA, with the windows behind the verdict); event alarms by their events of the last hour.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langflow_cms import contract, events
from langflow_cms.delivery.transport import CmsError
from langflow_cms.ops import readback
from langflow_cms.ops.alarms.client import denied
from langflow_cms.ops.alarms.event_rules import SlsSettings, flow_logs_link
from langflow_cms.ops.alarms.model import ALL_FLOWS, EVENT_LOOKBACK_S, STATISTICS, Alarm, EventAlarm, Spec
from langflow_cms.ops.alarms.rules import number_text
from langflow_cms.ops.query import dimension_query_string

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "=": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}


def evaluate_series(
    values_by_window: Mapping[int, float], *, operator: str, threshold: float, periods: int, period: int
) -> tuple[str, list[tuple[int, float, bool]]]:
    """CMS's evaluation of one series: the latest window with data is compared, then the windows before
    it, one period apart; ``periods`` consecutive breaching windows (no gap) is ALARM, a latest window
    that does not breach (or fewer breaching windows in a row) is OK, no window at all is
    INSUFFICIENT_DATA. Returns the state and the windows behind it, newest first:
    ``[(window_ms, value, breaching)]``."""
    if not values_by_window:
        return INSUFFICIENT, []
    breach = _COMPARE[operator]
    latest = max(values_by_window)
    used = []
    for i in range(periods):
        window = latest - i * period * 1000
        if window not in values_by_window:
            break
        value = values_by_window[window]
        used.append((window, value, breach(value, threshold)))
        if not used[-1][2]:
            break
    state = ALARM if len(used) == periods and all(b for _, _, b in used) else OK
    return state, used


@dataclass
class CheckResult:
    alarm: str
    rule_id: str
    state: str
    condition: str
    series: list[dict[str, Any]]
    kind: str = "metric"
    logs: str | None = None
    """With SLS configured: the flow's log search (over the breaching windows for an ALARM)."""

    def as_dict(self) -> dict[str, Any]:
        out = {
            "alarm": self.alarm,
            "rule_id": self.rule_id,
            "kind": self.kind,
            "state": self.state,
            "condition": self.condition,
            "series": self.series,
        }
        if self.logs:
            out["logs"] = self.logs
        return out


def _condition(alarm: Alarm) -> str:
    unit = " ms" if STATISTICS[alarm.statistic][2] == "duration" else ""
    what = alarm.cms_statistic
    return (
        f"{alarm.metric} {what} {alarm.operator} {number_text(alarm.threshold)}{unit} "
        f"for {alarm.periods} x {alarm.period}s"
    )


def check(
    spec: Spec,
    reader: Any,
    *,
    end_ms: int | None = None,
    lookback_periods: int = 10,
    sls: SlsSettings | None = None,
) -> list[CheckResult]:
    """Read the last periods of every alarm's series back (DescribeCustomMetricList + DescribeMetricList)
    and evaluate each rule the way CMS does, per series (CMS alarms per resource; nothing is combined
    across series or windows: each value is one series in one window, exactly what CMS compares).

    Only complete windows count (window start + period <= ``end_ms``): the minute in progress is not
    judged on partial data. An alarm is ALARM when any of its series is, else OK when any has data, else
    INSUFFICIENT_DATA.
    ``lookback_periods`` periods beyond the evaluated ones are read, to find the latest window with data.

    Event alarms are not evaluated over windows (CMS notifies on each matching event, then stays silent
    for ``silence``): ``check`` reads the matching events of the last hour (DescribeCustomEventAttribute)
    and says ALARM when there is one, OK when there is none.
    """
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    results = []
    for alarm in spec.alarms:
        span_ms = (alarm.periods + lookback_periods) * alarm.period * 1000
        points = readback.read(
            reader,
            alarm.metric,
            alarm.dimensions(),
            period=alarm.period,
            start_ms=end_ms - span_ms,
            end_ms=end_ms,
        )
        by_series = readback.group_by(points, dimension_query_string)
        series = []
        for dims_text, group in sorted(by_series.items()):
            values = {
                int(p["time"]): float(p["values"][alarm.cms_statistic])
                for p in group
                if alarm.cms_statistic in p["values"] and int(p["time"]) + alarm.period * 1000 <= end_ms
            }
            state, used = evaluate_series(
                values,
                operator=alarm.operator,
                threshold=alarm.threshold,
                periods=alarm.periods,
                period=alarm.period,
            )
            samples = {int(p["time"]): p["values"].get("SampleCount") for p in group}
            series.append(
                {
                    "dimensions": dims_text,
                    "state": state,
                    "windows": [
                        {
                            "time_ms": w,
                            "value": v,
                            "breaching": b,
                            "samples": samples.get(w),
                        }
                        for w, v, b in used
                    ],
                }
            )
        states = {s["state"] for s in series}
        state = ALARM if ALARM in states else OK if OK in states else INSUFFICIENT
        logs = None
        if state == ALARM:
            first = min(w["time_ms"] for s in series if s["state"] == ALARM for w in s["windows"])
            logs = flow_logs_link(sls, alarm.flow, start_s=first // 1000, end_s=end_ms // 1000)
        results.append(CheckResult(alarm.name, alarm.rule_id, state, _condition(alarm), series, logs=logs))
    results += [_check_events(a, reader, end_ms, sls) for a in spec.event_alarms]
    return results


def _read_events(reader: Any, name: str, start_ms: int) -> list[dict[str, Any]]:
    if hasattr(reader, "events"):
        return reader.events(name, start_ms)
    from langflow_cms.ops.query import describe_custom_events

    return describe_custom_events(
        reader.client, name=name, endpoint=reader.endpoint, start_ms=start_ms, limiter=reader.limiter
    )


def _check_events(alarm: EventAlarm, reader: Any, end_ms: int, sls: SlsSettings | None) -> CheckResult:
    start_ms = end_ms - EVENT_LOOKBACK_S * 1000
    matched = []
    for name in alarm.event_names:
        for event in _read_events(reader, name, start_ms):
            content = event.get("content") or {}
            when = int(event.get("time") or 0)
            if not start_ms <= when <= end_ms:
                continue
            if alarm.flow == ALL_FLOWS or str(content.get(contract.FLOW, "")) == alarm.flow:
                matched.append(
                    {
                        "name": name,
                        "time_ms": when,
                        "run_id": content.get("run_id"),
                        "sls": content.get("sls"),
                    }
                )
    matched.sort(key=lambda e: -e["time_ms"])
    flow = "every flow" if alarm.flow == ALL_FLOWS else f"flow {alarm.flow}"
    condition = f"any {', '.join(alarm.event_names)} event of {flow}"
    state = ALARM if matched else OK
    logs = None
    if matched:
        logs = flow_logs_link(
            sls,
            alarm.flow,
            start_s=matched[-1]["time_ms"] // 1000 - events.LINK_MARGIN_S,
            end_s=matched[0]["time_ms"] // 1000 + events.LINK_MARGIN_S,
        )
    series = [
        {
            "dimensions": f"{contract.FLOW}={alarm.flow}",
            "state": state,
            "events": matched[:10],
            "count": len(matched),
            "since_ms": start_ms,
        }
    ]
    return CheckResult(alarm.name, alarm.rule_name, state, condition, series, kind="event", logs=logs)


def _clock(ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000))


def render_check(results: Sequence[CheckResult]) -> str:
    """One block per alarm: its state and condition, then each series with the windows behind it."""
    lines = []
    for result in results:
        lines.append(f"{result.state:<17} {result.alarm}  [{result.condition}]")
        if result.kind == "event":
            (found,) = result.series
            latest = found["events"][0] if found["events"] else None
            lines.append(
                f"    {found['count']} in the last {EVENT_LOOKBACK_S // 60} min"
                + (f", latest {_clock(latest['time_ms'])} run {latest['run_id']}" if latest else "")
            )
            if result.logs:
                lines.append(f"    logs: {result.logs}")
            continue
        if result.logs:
            lines.append(f"    logs: {result.logs}")
        if not result.series:
            lines.append("    no data in the range (no series matches)")
        for series in result.series:
            windows = ", ".join(
                _clock(w["time_ms"])
                + "="
                + number_text(round(w["value"], 3))
                + ("!" if w["breaching"] else "")
                for w in series["windows"]
            )
            lines.append(f"    {series['state']:<17} {series['dimensions']}: {windows or '-'}")
    lines.append("(window start UTC = value; ! breaches the threshold; newest first; event times UTC)")
    return "\n".join(lines)


class PermissionNamingReader:
    """Wraps a :class:`langflow_cms.ops.query.Reader` so a permission error names the RAM action."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def _wrap(self, action: str, call: Callable[[], Any]) -> Any:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        try:
            return call()
        except ServerException as exc:
            error = denied(action, exc.get_error_code(), exc.get_error_msg(), exc.get_http_status())
            if error is None:
                raise
            raise error from None
        except CmsError as exc:
            error = denied(action, exc.code, exc.message, exc.http_status)
            if error is None:
                raise
            raise error from None

    def series(self, metric_name: str, **filters: Any) -> list[dict[str, Any]]:
        return self._wrap("DescribeCustomMetricList", lambda: self.reader.series(metric_name, **filters))

    def points(self, metric_name: str, dimensions: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._wrap("DescribeMetricList", lambda: self.reader.points(metric_name, dimensions, **kwargs))

    def events(self, name: str, start_ms: int) -> list[dict[str, Any]]:
        return self._wrap("DescribeCustomEventAttribute", lambda: _read_events(self.reader, name, start_ms))
