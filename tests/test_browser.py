"""The user's path, in a real browser: find the nodes, build a flow on the canvas, run it, see it in CMS.

Playwright lives in .venv-server (the venv with full Langflow), not in the lfx-only project venv, so this
file has two halves: the pytest test, which runs under .venv, and the browser driver (``drive``), which the
test runs as ``.venv-server/bin/python tests/test_browser.py URL SCREENSHOT``. The driver prints the flow id
as its last line; the test then checks the emulator for that flow's duration series.

Chromium is Debian's (/usr/bin/chromium): Playwright's own browser download needs a CDN this machine and CI
cannot reach. The flags keep it from calling Google services, which the closed network would refuse.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import server_support as support
except ImportError:  # run as a script: the driver needs no helpers
    support = None

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "canvas.png"
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
NODE_COMPONENTS = {"ChatInput", "CmsMetricComponent", "CmsTimerComponent", "ChatOutput"}
MESSAGE = "hello from the browser"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_build_and_run_a_monitored_flow_in_the_browser(tmp_path):
    support.ensure_browser()
    server = support.shared_server()
    emulator = support.shared_emulator()
    shot = tmp_path / "canvas.png"
    result = subprocess.run(
        [str(support.SERVER_PYTHON), __file__, server.url, str(shot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"browser driver failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    flow_id = result.stdout.strip().splitlines()[-1]

    name = server.api("GET", f"/api/v1/flows/{flow_id}")["name"]
    flows, nodes = support.wait_for_flow(emulator, support.flow_label(name), NODE_COMPONENTS)
    assert support.sample_count(flows) == 1, flows
    assert {e["dimensions"]["status"] for e in flows + nodes} == {"ok"}
    assert {e["dimensions"]["component"] for e in nodes} == NODE_COMPONENTS

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(shot.read_bytes())


# --- the browser driver (runs under .venv-server) -------------------------------------------------------

NODES = [  # sidebar search, draggable test id, drop point on the canvas (top-left corner of the node)
    ("chat input", "input_output_chat input_draggable", 60, 250),
    ("CMS", "cms_monitor_cms metric_draggable", 360, 100),
    ("CMS", "cms_monitor_timer_draggable", 760, 100),
    ("chat output", "input_output_chat output_draggable", 1160, 250),
]
EDGES = [  # output handle -> input handle
    ("handle-chatinput-noshownode-chat message-source", "handle-cmsmetriccomponent-shownode-input-left"),
    ("handle-cmsmetriccomponent-shownode-output-right", "handle-cmstimercomponent-shownode-input-left"),
    ("handle-cmstimercomponent-shownode-output-right", "handle-chatoutput-noshownode-inputs-target"),
]


def drive(url: str, screenshot: str) -> str:
    """New flow; drag Chat Input, CMS Metric, Timer, Chat Output; wire them; run from the Playground."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="networkidle")
        # "New Flow" on the flow list; "Create first flow" when the database has no flows yet.
        new_flow = page.get_by_test_id("new-project-btn").or_(
            page.get_by_test_id("new_project_btn_empty_page")
        )
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
        for query, draggable, x, y in NODES:
            search.fill(query)
            page.get_by_test_id(draggable).drag_to(pane, target_position={"x": x, "y": y})
        expect(page.locator(".react-flow__node")).to_have_count(len(NODES))
        for source, target in EDGES:
            page.get_by_test_id(source).drag_to(page.get_by_test_id(target))
        expect(page.locator(".react-flow__edge")).to_have_count(len(EDGES))

        page.get_by_test_id("playground-btn-flow-io").click()
        page.get_by_test_id("input-chat-playground").fill(MESSAGE)
        page.get_by_test_id("button-send").click()
        expect(page.get_by_test_id(f"chat-message-AI-{MESSAGE}")).to_be_visible()
        page.get_by_test_id("playground-close-button").click()

        # The picture for the README: the sidebar found our bundle, the flow shows each node's run time.
        search.fill("CMS")
        pane.click(position={"x": 1300, "y": 800})
        expect(page.get_by_test_id("cms_monitor_timer_draggable")).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=screenshot, clip={"x": 0, "y": 0, "width": 1680, "height": 820})
        browser.close()
    return flow_id


if __name__ == "__main__":
    print(drive(sys.argv[1], sys.argv[2]), flush=True)
