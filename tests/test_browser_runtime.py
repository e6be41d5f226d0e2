"""What a run did, seen on the canvas without opening anything: the real Langflow 1.13 server and Chromium.

Two saved flows, opened on the canvas and run from the Playground as their author does:

* Chat Input → CMS Metric (Value ``{text}``) → Chat Output, sent ``lots``: the metric gets no number, so it
  is not recorded. The flow still answers, and the CMS Metric node itself shows it (red border and alert
  icon, its reason in the status tooltip), before any inspector is opened.
* Chat Input → Timer Start → Offline Poet (fails when the prompt says ``boom``) → Timer Stop → CMS Metric →
  Chat Output, run once fine and once failing: after the failed run the Timer Stop, which the run never
  reached, must not keep the previous run's span; it says the run failed (icon, tooltip, Logs tab), and so
  does the CMS Metric after it.

The flows are saved through the API (the drag-and-drop path is tests/test_browser.py's); the driver
(``drive``) runs under .venv-server like tests/test_browser.py's and prints a JSON summary as its last line.
Screenshots go to a temporary directory; ``make screenshots`` keeps them in docs/images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import server_support as support
    from test_browser import CHROMIUM, CHROMIUM_ARGS
except ImportError:  # run as a script: the driver needs no helpers
    support = None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_browser import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[1]
NOT_A_NUMBER = "lots"
FAILING_WORD = "boom"
SHOTS = ("cms_metric_not_recorded_tooltip.png", "timer_stop_failed_run.png")  # the ones docs/usage.md shows
METRIC_NAME = "runtime_value"


def _metric_flow(server) -> str:
    from lfx.graph.flow_builder import add_component, add_connection, empty_flow, layout_flow

    registry = server.registry()
    flow = empty_flow("Runtime warning", "")
    add_component(flow, "ChatInput", registry, component_id="ChatInput-rt1")
    add_component(flow, support.METRIC_TYPE, registry, component_id="CmsMetric-rt1")
    add_component(flow, "ChatOutput", registry, component_id="ChatOutput-rt1")
    template = _flow_node(flow, "CmsMetric-rt1")["data"]["node"]["template"]
    template["metric_name"]["value"] = METRIC_NAME
    template["value"]["value"] = "{text}"
    add_connection(flow, "ChatInput-rt1", "message", "CmsMetric-rt1", "input_value")
    add_connection(flow, "CmsMetric-rt1", "output", "ChatOutput-rt1", "input_value")
    layout_flow(flow)
    return server.api("POST", "/api/v1/flows/", {"name": "Runtime warning", "data": flow["data"]})["id"]


def _timer_flow(server) -> str:
    from lfx.graph.flow_builder import add_component, add_connection, empty_flow, layout_flow

    registry = server.registry()
    flow = empty_flow("Failing span", "")
    start = next(k for k in registry if "CmsTimerStartComponent" in k)
    stop = next(k for k in registry if "CmsTimerStopComponent" in k)
    add_component(flow, "ChatInput", registry, component_id="ChatInput-rt2")
    add_component(flow, start, registry, component_id="TimerStart-rt2")
    flow["data"]["nodes"].append(_poet_node())
    add_component(flow, stop, registry, component_id="TimerStop-rt2")
    add_component(flow, support.METRIC_TYPE, registry, component_id="CmsMetric-rt2")
    add_component(flow, "ChatOutput", registry, component_id="ChatOutput-rt2")
    add_connection(flow, "ChatInput-rt2", "message", "TimerStart-rt2", "input_value")
    add_connection(flow, "TimerStart-rt2", "output", "OfflinePoet-rt2", "prompt")
    add_connection(flow, "OfflinePoet-rt2", "text", "TimerStop-rt2", "input_value")
    add_connection(flow, "TimerStop-rt2", "output", "CmsMetric-rt2", "input_value")
    add_connection(flow, "CmsMetric-rt2", "output", "ChatOutput-rt2", "input_value")
    layout_flow(flow)
    return server.api("POST", "/api/v1/flows/", {"name": "Failing span", "data": flow["data"]})["id"]


def _poet_node() -> dict:
    """The example flows' Offline Poet (its source saved in the node, as the canvas saves it), failing when
    the prompt contains ``FAILING_WORD``, without simulated latency."""
    saved = json.loads((REPO / "examples" / "flows" / "poem_failing.json").read_text())
    node = next(n for n in saved["data"]["nodes"] if n["id"].startswith("OfflinePoet"))
    node = json.loads(json.dumps(node).replace(node["id"], "OfflinePoet-rt2"))
    template = node["data"]["node"]["template"]
    template["fail_when"]["value"] = FAILING_WORD
    template["latency_scale"]["value"] = 0.0
    return node


def _flow_node(flow: dict, node_id: str) -> dict:
    return next(n for n in flow["data"]["nodes"] if n["id"] == node_id)


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> dict:
    """Both flows run in the browser once; what the driver read off the screen."""
    support.ensure_browser()
    server = support.shared_server()
    support.shared_emulator()
    shots = tmp_path_factory.mktemp("runtime-shots")
    flows = {"metric": _metric_flow(server), "timer": _timer_flow(server)}
    result = subprocess.run(
        [str(support.SERVER_PYTHON), __file__, server.url, json.dumps(flows), str(shots)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"browser driver failed (page: {shots / 'failure.png'}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    keep = os.environ.get("LANGFLOW_CMS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in SHOTS:
            if (shots / shot).exists():
                (Path(keep) / shot).write_bytes((shots / shot).read_bytes())
    return {**found, "shots": str(shots), "flows": flows}


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(1500)
def test_a_metric_not_recorded_at_run_time_shows_on_the_node_without_opening_it(seen):
    metric = seen["metric"]
    assert metric["answered"], "the flow must still answer: monitoring never fails it"
    # On the node, without a click: the alert icon (the node's build marked invalid), not the green badge.
    assert metric["alert_icon"] and not metric["green_badge"], metric
    # Its reason in the status tooltip (hover), and the same in the Logs tab.
    assert f"Not recorded: no number for {METRIC_NAME}" in metric["tooltip"], metric
    assert "The flow ran on" in metric["tooltip"], metric
    assert (Path(seen["shots"]) / "cms_metric_not_recorded.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(1500)
def test_after_a_failed_run_timer_stop_no_longer_shows_the_previous_span(seen):
    timer = seen["timer"]
    assert timer["first_run_badge"], timer  # the good run: Timer Stop built, with its duration badge
    assert timer["failed_run_error_shown"], timer  # the failing run failed ("Flow build failed" notice)
    after = timer["after_failure"]
    assert after["alert_icon"] and not after["green_badge"], after
    assert "the run failed at Offline_Poet" in after["tooltip"], after
    assert "status=error" in after["logs"] and "the run failed at Offline_Poet" in after["logs"], after
    metric = timer["metric_after_failure"]  # the CMS Metric after it was not reached either
    assert metric["alert_icon"] and not metric["green_badge"], metric
    assert "Not run: the run failed at Offline_Poet" in metric["tooltip"], metric


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(600)
def test_the_build_event_stream_marks_the_node_and_the_flow_runs_on(seen):
    """The same run on the Playground's ``/api/v1/build`` event stream (NDJSON): the CMS Metric's
    ``end_vertex`` is invalid with its reason; every node after it is built and the run ends normally."""
    events = support.build_events(support.shared_server(), seen["flows"]["metric"], NOT_A_NUMBER)
    built = {
        e["data"]["build_data"]["id"]: e["data"]["build_data"] for e in events if e["event"] == "end_vertex"
    }
    metric = built["CmsMetric-rt1"]
    assert metric["valid"] is False, metric
    reasons = [
        o["message"]["errorMessage"] for o in metric["data"]["outputs"].values() if o.get("type") == "error"
    ]
    assert any(r.startswith(f"Not recorded: no number for {METRIC_NAME}") for r in reasons), reasons
    assert metric["data"]["outputs"]["output"]["type"] != "error"  # the pass-through output itself is intact
    assert built["ChatOutput-rt1"]["valid"] is True  # the flow ran on past it
    assert [e["event"] for e in events][-1] == "end" and not [e for e in events if e["event"] == "error"]


# --- the browser driver (runs under .venv-server) -------------------------------------------------------


def drive(url: str, flows: dict, shots: str) -> dict:
    from playwright.sync_api import expect, sync_playwright

    shot_dir = Path(shots)
    expect.set_options(timeout=90_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2300, "height": 1300})
        page.set_default_timeout(90_000)
        try:
            return {
                "metric": _metric(page, url, flows["metric"], shot_dir, expect),
                "timer": _timer(page, url, flows["timer"], shot_dir, expect),
            }
        except Exception:
            page.screenshot(path=str(shot_dir / "failure.png"))
            raise
        finally:
            browser.close()


def _open(page, url: str, flow_id: str) -> None:
    page.goto(f"{url}/flow/{flow_id}", wait_until="networkidle")
    page.locator(".react-flow__node").first.wait_for()
    page.wait_for_timeout(1500)


def _send(page, text: str, expect, reply: str | None) -> None:
    """Send ``text`` from the Playground; wait for ``reply`` from the flow, or for the run to end."""
    page.get_by_test_id("playground-btn-flow-io").click()
    page.get_by_test_id("input-chat-playground").fill(text)
    page.get_by_test_id("button-send").click()
    if reply is not None:
        expect(page.get_by_test_id(f"chat-message-AI-{reply}")).to_be_visible()
    else:
        expect(page.get_by_test_id("button-send")).to_be_enabled()
        page.wait_for_timeout(2000)
    page.get_by_test_id("playground-close-button").click()
    page.wait_for_timeout(800)


def _node(page, node_id: str):
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def _status(page, node_id: str, name: str, shot: Path | None = None, tip_shot: Path | None = None) -> dict:
    """What the node shows on the canvas: its alert icon or green duration badge; then, hovering, the
    status tooltip's text."""
    node = _node(page, node_id)
    icon = node.get_by_test_id(f"node_status_icon_{name}_error")
    badge = node.get_by_test_id(f"node_duration_{name}")
    found = {"alert_icon": icon.count() > 0 and icon.is_visible(), "green_badge": badge.count() > 0}
    if shot is not None:
        node.screenshot(path=str(shot))
    target = icon if found["alert_icon"] else badge
    found["tooltip"] = ""
    if target.count():
        target.first.hover()
        tip = page.get_by_role("tooltip")
        try:
            tip.first.wait_for(timeout=10_000)
            found["tooltip"] = tip.first.inner_text()
        except Exception:
            found["tooltip"] = ""
        if tip_shot is not None:
            box = node.bounding_box()
            page.screenshot(
                path=str(tip_shot),
                clip={"x": box["x"] - 20, "y": box["y"] - 20, "width": box["width"] + 300, "height": 420},
            )
        page.mouse.move(5, 5)
        page.wait_for_timeout(300)
    return found


def _logs(page, node_id: str, expect) -> str:
    _node(page, node_id).locator('[data-testid^="output-inspection-output-"]').click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("tab", name="Logs").click()
    expect(dialog).to_contain_text("ms")
    panel = dialog.get_by_role("tabpanel")
    text = panel.inner_text().strip() if panel.count() else dialog.inner_text().strip()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    return text


def _metric(page, url: str, flow_id: str, shot_dir: Path, expect) -> dict:
    _open(page, url, flow_id)
    _send(page, NOT_A_NUMBER, expect, reply=NOT_A_NUMBER)
    node = "CmsMetric-rt1"
    alert = _node(page, node).get_by_test_id("node_status_icon_cms metric_error")
    expect(alert).to_be_visible(timeout=30_000)
    found = _status(
        page,
        node,
        "cms metric",
        shot=shot_dir / "cms_metric_not_recorded.png",
        tip_shot=shot_dir / "cms_metric_not_recorded_tooltip.png",
    )
    return {**found, "answered": True}


def _timer(page, url: str, flow_id: str, shot_dir: Path, expect) -> dict:
    _open(page, url, flow_id)
    stop = "TimerStop-rt2"
    _send(page, "hello", expect, reply=None)
    badge = _node(page, stop).get_by_test_id("node_duration_timer stop")
    expect(badge).to_be_visible(timeout=30_000)
    first = badge.is_visible()
    _send(page, FAILING_WORD, expect, reply=None)
    failed = page.get_by_text("simulated provider error").first  # the canvas's "Flow build failed" notice
    expect(failed).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1500)
    after = _status(page, stop, "timer stop", shot=shot_dir / "timer_stop_failed_run.png")
    after["logs"] = _logs(page, stop, expect)
    return {
        "first_run_badge": first,
        "failed_run_error_shown": True,
        "after_failure": after,
        "metric_after_failure": _status(page, "CmsMetric-rt2", "cms metric"),
    }


if __name__ == "__main__":
    print(json.dumps(drive(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])), flush=True)
