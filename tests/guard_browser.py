"""Browser driver of tests/test_guard_server.py: the flow's version history in the Langflow UI after the
guard's rollback. Runs under .venv-server (Playwright lives there, see tests/test_browser.py):

    .venv-server/bin/python tests/guard_browser.py URL FLOW_ID SHOT.png

Opens the flow, opens the sidebar's Versions panel, waits until it shows the auto-save the rollback made
("Auto-saved before activating v1"), saves the screenshot and prints the panel's text as its last line
(JSON)."""

from __future__ import annotations

import json
import sys

from test_browser import CHROMIUM, CHROMIUM_ARGS

ROLLBACK_TEXT = "Auto-saved before activating v1"


def drive(url: str, flow_id: str, shot: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(90_000)
        try:
            page.goto(f"{url}/flow/{flow_id}", wait_until="networkidle")
            page.get_by_test_id("sidebar-nav-versions").click()
            page.get_by_text(ROLLBACK_TEXT).first.wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=shot)
            panel = page.get_by_text(ROLLBACK_TEXT).first.locator("xpath=ancestor::*[position()<=4]").last
            return {"text": panel.inner_text()}
        except Exception:
            page.screenshot(path=shot.replace(".png", "-failure.png"))
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(drive(*sys.argv[1:4])))
