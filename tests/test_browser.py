"""The user's path, in a real browser: find the nodes, build a flow on the canvas, run it, see it in CMS.

The flow is built from scratch by drag and drop (no prepared JSON): Chat Input → Timer Stop (no start before
it: flagged) → Timer Start → CMS Metric (``browser_runs``) → CMS Metric (``bad name!``) → Timer Stop → Chat
Output, and Timer Start and the first CMS Metric also wired into a Prompt Template's variables (their
Message output connects like any pass-through). The bad name is flagged in its field's title as soon as it
is typed, on the canvas. The flow runs from the Playground; then each node's output inspector (Logs tab)
must show, on screen, what the node did: the recorded metric, the bad name's reason, the stop without a
start, the measured span.

Playwright lives in .venv-server (the venv with full Langflow), not in the lfx-only project venv, so this
file has two halves: the pytest test, which runs under .venv, and the browser driver (``drive``), which the
test runs as ``.venv-server/bin/python tests/test_browser.py URL SHOT_DIR``. The driver prints a JSON summary
(flow id, node ids, the texts it read off the screen) as its last line; the test checks those texts and the
emulator's series. Screenshots go to a temporary directory; ``make screenshots`` sets
``LANGFLOW_CMS_SCREENSHOTS=docs/images`` to keep them for the docs.

Chromium is Debian's (/usr/bin/chromium): Playwright's own browser download needs a CDN this machine and CI
cannot reach. The flags keep it from calling Google services, which the closed network would refuse.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import server_support as support
except ImportError:  # run as a script: the driver needs no helpers
    support = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MESSAGE = "hello from the browser"
GOOD_METRIC = "browser_runs"
BAD_METRIC = "bad name!"
SHOTS = (
    "canvas.png",
    "cms_metric_warning.png",
    "cms_metric_recorded.png",
    "cms_metric_bad_name.png",
    "timer_span.png",
    "timer_no_start.png",
)
INVALID_METRIC = "langflow_cms_invalid"
SPAN_METRIC = "langflow_span_duration_ms"


def node_naming_wired() -> bool:
    """True once ``langflow/monitor.py`` names the ``node`` dimension with ``flow_settings.node_label``."""
    from langflow_cms.langflow import monitor

    return "node_label" in inspect.getsource(monitor)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(1500)
def test_build_and_run_a_monitored_flow_in_the_browser(tmp_path):
    support.ensure_browser()
    server = support.shared_server()
    emulator = support.shared_emulator()
    result = subprocess.run(
        [str(support.SERVER_PYTHON), __file__, server.url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"browser driver failed (page: {tmp_path / 'failure.png'}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    texts = seen["texts"]

    # What the author reads on the canvas after the run (the Logs tab of each node's output inspector).
    assert f"Recorded {GOOD_METRIC} = 1 {{flow=" in texts["metric"], texts["metric"]
    assert "Monitoring on: flow '" in texts["metric"] and "reporter healthy" in texts["metric"]
    assert f"Not recorded: '{BAD_METRIC}' is not a valid CMS metric name" in texts["bad"], texts["bad"]
    assert re.search(r"Span 'Timer_Start': \d+(\.\d)? ms", texts["span"]), texts["span"]
    assert "Stop without start: no Timer Start runs before this node" in texts["no_start"], texts["no_start"]
    assert "entries sent to CloudMonitor since start" in texts["metric"], texts["metric"]

    # Seen on the canvas without opening anything: the bad name's field title; the good one stays plain.
    assert seen["titles"] == {"bad": "Metric Name \u26a0 not a CMS name", "metric": "Metric Name"}, seen
    assert seen["edges"] == len(CHAIN) - 1 + len(TO_PROMPT), seen
    assert (tmp_path / "cms_metric_warning.png").stat().st_size > 1000

    # What reached CMS: readable dimensions, the span, and the bad name counted.
    name = server.api("GET", f"/api/v1/flows/{seen['flow_id']}")["name"]
    flow = support.flow_label(name)
    assert (
        flow.startswith("New_Flow") and " " not in flow
    )  # the flow's name, readable: New Flow (1) -> New_Flow_1
    components = {"ChatInput", "CmsMetricComponent", "CmsTimerStartComponent", "CmsTimerStopComponent"}
    flows, node_entries = support.wait_for_flow(emulator, flow, components)
    assert support.sample_count(flows) == 1 and {e["dimensions"]["status"] for e in flows} == {"ok"}
    metric = support.wait_for(lambda: support.minute_entries(emulator, GOOD_METRIC, flow), what=GOOD_METRIC)
    assert support.sample_count(metric) == 1
    spans = support.minute_entries(emulator, SPAN_METRIC, flow)
    assert {e["dimensions"]["span"] for e in spans} == {"Timer_Start"}
    if node_naming_wired():
        node_names = {e["dimensions"]["node"] for e in node_entries}
        assert {"Chat_Input", "Timer_Start", "Chat_Output"} <= node_names, node_names
        metric_ids = [i for i in seen["node_ids"] if "CmsMetric" in i]
        assert {f"CMS_Metric_{i.rsplit('-', 1)[1]}" for i in metric_ids} <= node_names, node_names

    def invalid_count() -> float:
        entries = emulator.entries(name=INVALID_METRIC)
        return sum(e["values"].get("Sum", 0) for e in entries if e["period"] == 60)

    # the bad name and the stop without a start; the reporter sends its self-health once a minute
    support.wait_for(lambda: invalid_count() >= 2, timeout=150, what=f"{INVALID_METRIC} >= 2")

    keep = os.environ.get("LANGFLOW_CMS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in SHOTS:
            (Path(keep) / shot).write_bytes((tmp_path / shot).read_bytes())


# --- the browser driver (runs under .venv-server) -------------------------------------------------------

# (key, sidebar search, draggable test id, drop point on the canvas: top-left corner of the node). 400 px
# apart: a node is about 330 px wide, and a drop onto another node's handle adds nothing.
NODES = [
    ("input", "chat input", "input_output_chat input_draggable", 20, 40),
    ("no_start", "timer", "cms_monitor_timer stop_draggable", 420, 40),
    ("start", "timer", "cms_monitor_timer start_draggable", 820, 40),
    ("metric", "CMS", "cms_monitor_cms metric_draggable", 1220, 40),
    ("bad", "CMS", "cms_monitor_cms metric_draggable", 20, 640),
    ("span", "timer", "cms_monitor_timer stop_draggable", 420, 640),
    ("output", "chat output", "input_output_chat output_draggable", 820, 640),
    ("prompt", "prompt", "models_and_agents_prompt template_draggable", 1220, 640),
]
PROMPT_TEMPLATE = "Answer {question} within {context}"
TO_PROMPT = {  # plugin node -> the Prompt Template variable it feeds (drawn by drag and drop)
    "metric": "handle-prompt template-shownode-question-left",
    "start": "handle-prompt template-shownode-context-left",
}
SOURCE = {
    "input": "handle-chatinput-noshownode-chat message-source",
    "metric": "handle-cmsmetriccomponent-shownode-output-right",
    "bad": "handle-cmsmetriccomponent-shownode-output-right",
    "start": "handle-cmstimerstartcomponent-shownode-output-right",
    "no_start": "handle-cmstimerstopcomponent-shownode-output-right",
    "span": "handle-cmstimerstopcomponent-shownode-output-right",
}
TARGET = {
    "metric": "handle-cmsmetriccomponent-shownode-input-left",
    "bad": "handle-cmsmetriccomponent-shownode-input-left",
    "start": "handle-cmstimerstartcomponent-shownode-input-left",
    "no_start": "handle-cmstimerstopcomponent-shownode-input-left",
    "span": "handle-cmstimerstopcomponent-shownode-input-left",
    "output": "handle-chatoutput-noshownode-inputs-target",
}
CHAIN = ["input", "no_start", "start", "metric", "bad", "span", "output"]
INSPECTED = {  # node key -> screenshot of its output inspector's Logs tab
    "metric": "cms_metric_recorded.png",
    "bad": "cms_metric_bad_name.png",
    "span": "timer_span.png",
    "no_start": "timer_no_start.png",
}


def drive(url: str, shots: str) -> dict:
    """New flow; drag the seven nodes, wire them, name the metrics; run from the Playground; read each
    node's Logs tab. On failure the page is saved as ``failure.png`` next to the screenshots."""
    from playwright.sync_api import expect, sync_playwright

    shot_dir = Path(shots)
    expect.set_options(timeout=90_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2300, "height": 1300})
        page.set_default_timeout(90_000)
        try:
            return _drive(page, url, shot_dir, expect)
        except Exception:
            page.screenshot(path=str(shot_dir / "failure.png"))
            raise
        finally:
            browser.close()


def _drive(page, url: str, shot_dir: Path, expect) -> dict:
    page.goto(url, wait_until="networkidle")
    # "New Flow" on the flow list; "Create first flow" when the database has no flows yet.
    new_flow = page.get_by_test_id("new-project-btn").or_(page.get_by_test_id("new_project_btn_empty_page"))
    new_flow.first.click()
    page.wait_for_url("**/flow/**")
    flow_id = page.url.rstrip("/").split("/flow/")[1].split("/")[0].split("?")[0]

    # A new, empty flow opens behind a welcome panel; its Components rail opens the real sidebar.
    search = page.get_by_test_id("sidebar-search-input")
    welcome = page.get_by_test_id("flow-builder-welcome-faux-rail-components")
    search.or_(welcome).filter(visible=True).first.wait_for()
    if not search.is_visible():
        welcome.click()

    pane = page.locator(".react-flow__pane")
    ids: dict[str, str] = {}
    for key, query, draggable, x, y in NODES:
        before = set(page.locator(".react-flow__node").evaluate_all("ns => ns.map(n => n.dataset.id)"))
        search.fill(query)
        for attempt in range(3):  # a drop before the canvas is ready is lost: drag again
            page.get_by_test_id(draggable).drag_to(pane, target_position={"x": x, "y": y})
            try:
                expect(page.locator(".react-flow__node")).to_have_count(len(before) + 1, timeout=30_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        after = set(page.locator(".react-flow__node").evaluate_all("ns => ns.map(n => n.dataset.id)"))
        (ids[key],) = after - before

    def node(key: str):
        return page.locator(f'.react-flow__node[data-id="{ids[key]}"]')

    for source, target in itertools.pairwise(CHAIN):
        node(source).get_by_test_id(SOURCE[source]).drag_to(node(target).get_by_test_id(TARGET[target]))
    expect(page.locator(".react-flow__edge")).to_have_count(len(CHAIN) - 1)

    # The Prompt Template's variables become input handles once its template names them.
    node("prompt").get_by_test_id("promptarea_prompt_template").click()
    page.keyboard.type(PROMPT_TEMPLATE)
    pane.click(position={"x": 2000, "y": 1200})
    for source, handle in TO_PROMPT.items():
        expect(node("prompt").get_by_test_id(handle)).to_be_visible()
        node(source).get_by_test_id(SOURCE[source]).drag_to(node("prompt").get_by_test_id(handle))
    edges = len(CHAIN) - 1 + len(TO_PROMPT)
    expect(page.locator(".react-flow__edge")).to_have_count(edges)

    titles = {}
    for key, metric in (("metric", GOOD_METRIC), ("bad", BAD_METRIC)):
        node(key).get_by_test_id("popover-anchor-input-metric_name").fill(metric)
        # Setting a metric name shows its Value and Dimensions (real_time_refresh + update_build_config).
        expect(node(key).get_by_test_id("title-value")).to_be_visible()
    expect(node("bad").locator('[data-testid^="title-metric name"]')).to_contain_text("not a CMS name")
    page.wait_for_timeout(1500)  # let the last refresh settle before the run
    for key in ("metric", "bad"):
        titles[key] = node(key).locator('[data-testid^="title-metric name"]').inner_text().strip()
    node("bad").screenshot(path=str(shot_dir / "cms_metric_warning.png"))

    page.get_by_test_id("playground-btn-flow-io").click()
    page.get_by_test_id("input-chat-playground").fill(MESSAGE)
    page.get_by_test_id("button-send").click()
    expect(page.get_by_test_id(f"chat-message-AI-{MESSAGE}")).to_be_visible()
    page.get_by_test_id("playground-close-button").click()

    page.get_by_test_id("canvas_controls_dropdown").click()
    page.get_by_test_id("fit_view").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(800)
    page.screenshot(path=str(shot_dir / "canvas.png"))

    texts: dict[str, str] = {}
    for key, shot in INSPECTED.items():
        node(key).locator('[data-testid^="output-inspection-output-"]').click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("tab", name="Logs").click()
        expect(dialog).to_contain_text("ms" if key == "span" else "o")
        _widen_message_column(page, dialog)
        texts[key] = _logs_text(dialog)
        dialog.screenshot(path=str(shot_dir / shot))
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)
    return {
        "flow_id": flow_id,
        "node_ids": list(ids.values()),
        "texts": texts,
        "titles": titles,
        "edges": page.locator(".react-flow__edge").count(),
    }


def _widen_message_column(page, dialog) -> None:
    """The Logs grid cuts the message short; drag its column edge so the screenshot shows all of it."""
    try:
        handle = dialog.locator('.ag-header-cell[col-id="message"] .ag-header-cell-resize').first
        box = handle.bounding_box(timeout=2_000)
        if box:
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 1100, y, steps=8)
            page.mouse.up()
    except Exception:  # only the picture suffers; the text is read from the DOM either way
        pass
    page.wait_for_timeout(300)


def _logs_text(dialog) -> str:
    """The log message shown in the Logs tab (the panel's text minus the tab labels and title)."""
    panel = dialog.get_by_role("tabpanel")
    return panel.inner_text().strip() if panel.count() else dialog.inner_text().strip()


def reopen(url: str, flow_id: str) -> dict:
    """Open a saved flow on the canvas, as its author does after a restart, and wait while the editor checks
    the flow against the server's components (it drops edges that no longer fit) and saves it. Returns the
    number of edges on the canvas."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2300, "height": 1300})
        page.set_default_timeout(90_000)
        try:
            page.goto(f"{url}/flow/{flow_id}", wait_until="networkidle")
            page.locator(".react-flow__node").first.wait_for()
            page.wait_for_timeout(8_000)  # the editor's auto-save waits for a pause in changes
            return {"edges": page.locator(".react-flow__edge").count()}
        finally:
            browser.close()


if __name__ == "__main__":
    if sys.argv[1] == "--open":
        print(json.dumps(reopen(sys.argv[2], sys.argv[3])), flush=True)
    else:
        print(json.dumps(drive(sys.argv[1], sys.argv[2])), flush=True)
