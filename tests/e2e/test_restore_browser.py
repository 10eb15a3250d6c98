"""From the browser, with the real agent service running: Back up now, browse, restore.

Progress of both jobs shows live on the pages; nothing is reloaded by the test.
"""

import re
import signal

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from tests.e2e.test_agent_e2e import Agent, assert_same_tree, make_tree, portal, wait_for  # noqa: F401

pytestmark = pytest.mark.services


def test_backup_browse_and_restore_from_the_browser(portal, tmp_path, page):  # noqa: F811
    agent = Agent(portal, tmp_path, "browser-web-01")
    agent.register()
    src = make_tree(tmp_path, random_mib=6)
    # Throttled to about 2 MB/s so the progress bar has time to move on the page.
    portal.assign_policy(
        agent.name, [str(src)], throttle_enabled=True, work_hours_kbps=16000, off_hours_kbps=16000
    )
    machine_id = (
        portal.shell(
            f"from agents.models import Machine; print(Machine.objects.get(name={agent.name!r}).pk)"
        )
        .strip()
        .splitlines()[-1]
    )
    service = agent.popen("run")
    try:
        wait_for(lambda: (agent.config / "document.json").exists(), what="the first poll")
        sign_in(page, portal.server)
        page.goto(f"{portal.url}/machines/{machine_id}/")
        expect(page.locator("body")).to_have_attribute("data-live", "connected")
        page.click("button[name=action][value=backup]")
        expect(page.locator("body")).to_have_attribute("data-live", "connected")
        row = page.locator("table.jobs tbody tr[data-job]").first
        expect(row).to_contain_text("In progress", timeout=15000)
        bar = row.locator(".progress-bar")
        expect(bar).to_have_attribute("style", re.compile(r"width: [1-9]\d?%"), timeout=15000)
        screenshot(page, "restore-flow-backup-progress")
        expect(row).to_contain_text("Completed", timeout=60000)
        expect(bar).to_have_attribute("style", re.compile(r"width: 100%"))

        page.goto(f"{portal.url}/machines/{machine_id}/recover/")
        page.locator("input[name=point]").first.check()
        page.click("button:has-text('Select')")
        page.fill("#browse-path", str(src).lstrip("/"))
        page.click("button[name=action][value=browse]")
        listing = page.locator("#browse-result")
        expect(listing).to_contain_text("docs", timeout=15000)
        expect(listing).to_contain_text("random-0.bin")
        screenshot(page, "restore-flow-browse")
        for name in ("docs", "random-0.bin", "link-to-notes"):
            page.check(f"#browse-result input[aria-label='{name}']")
        target = tmp_path / "restored-from-browser"
        page.fill("#target-dir", str(target))
        page.check("input[name=on_conflict][value=overwrite]")
        page.click("button[name=action][value=restore]")
        expect(page).to_have_url(re.compile(r"/jobs/\?operation=restore"))
        expect(page.locator("body")).to_have_attribute("data-live", "connected")
        restore_row = page.locator("#job-table tbody tr[data-job]").first
        expect(restore_row).to_contain_text("Completed", timeout=60000)
        screenshot(page, "restore-flow-restore-completed")
    finally:
        service.send_signal(signal.SIGTERM)
        service.communicate(timeout=30)
    base = target / str(src).lstrip("/")
    assert_same_tree(src / "docs", base / "docs")
    assert (base / "random-0.bin").read_bytes() == (src / "random-0.bin").read_bytes()
    assert (base / "link-to-notes").is_symlink()
    assert not (base / "random-1.bin").exists()
