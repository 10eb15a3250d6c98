import re

import pytest
from playwright.sync_api import expect

from tests.e2e.agent_api import ScriptedAgent, create_vault, tenant_api, wait_deployed
from tests.e2e.conftest import PortalServer, screenshot, sign_in

pytestmark = pytest.mark.services


def test_deployment_and_job_progress_arrive_without_reload(portal_server, page):
    sign_in(page, portal_server)
    page.goto(portal_server.url + "/vaults/create/")
    page.fill("#id_name", "1-bad")
    expect(page.locator("#name-errors")).to_contain_text("must start with a letter")
    page.fill("#id_name", "live-vault")
    expect(page.locator("#name-errors")).to_contain_text("available")
    page.select_option("#id_resource_group", label="backup-rg")
    page.select_option("#id_region", "japaneast")
    page.click("button[name=step][value=review]")
    expect(page.locator(".banner-ok")).to_contain_text("Validation passed")
    page.click("button[name=step][value=create]")
    # The worker deploys in another process; the page turns without a reload.
    expect(page.locator("#deployment-status")).to_contain_text(
        "Your deployment is complete", timeout=15000
    )
    expect(page.locator(".toast").first).to_contain_text("Deployment succeeded")
    expect(page.locator("#bell-count")).to_be_visible()
    screenshot(page, "live-deployment-complete")

    api = tenant_api(portal_server)
    vault = api.get("/api/v1/vaults/").json()["results"][0]
    credentials = api.post(f"/api/v1/vaults/{vault['id']}/credentials/").json()
    agent = ScriptedAgent(portal_server, credentials)

    page.goto(f"{portal_server.url}/vaults/{vault['id']}/jobs/")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    job_id = agent.start_job()
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_contain_text("In progress", timeout=2000)
    agent.progress(
        job_id,
        phase="uploading",
        bytes_total=1000,
        bytes_scanned=250,
        rate_bps=2_000_000,
        eta_seconds=12,
    )
    expect(row.locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 25%"), timeout=2000
    )
    expect(row).to_contain_text("ETA 12 s")
    expect(row).to_contain_text("Uploading")
    screenshot(page, "live-job-progress")
    agent.progress(job_id, bytes_scanned=900)
    expect(row.locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 90%"), timeout=2000
    )
    agent.finish(job_id)
    expect(row).to_contain_text("Completed", timeout=2000)
    expect(row.locator(".progress-bar")).to_have_attribute("style", re.compile(r"width: 100%"))
    screenshot(page, "live-job-completed")


@pytest.mark.services_only
def test_an_event_from_one_web_process_reaches_a_page_on_another(portal_server, browser):
    """Two daphne processes and a worker on Redis: the agent talks to one, the page to the other."""
    second = PortalServer(portal_server.data_dir, dict(portal_server.env))
    second.env["PORTAL_URL"] = second.url
    second.start(worker=False)
    try:
        api = tenant_api(portal_server)
        vault = wait_deployed(api, create_vault(api)["id"])
        credentials = api.post(f"/api/v1/vaults/{vault['id']}/credentials/").json()
        agent = ScriptedAgent(portal_server, credentials)
        page = browser.new_page()
        sign_in(page, second)
        page.goto(f"{second.url}/vaults/{vault['id']}/jobs/")
        expect(page.locator("body")).to_have_attribute("data-live", "connected")
        job_id = agent.start_job()
        expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text(
            "In progress", timeout=2000
        )
        agent.finish(job_id, state="failed", error="simulated failure")
        expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("Failed", timeout=2000)
    finally:
        second.stop()


def test_a_dropped_socket_reconnects_and_catches_up(portal_server, page):
    api = tenant_api(portal_server)
    vault = wait_deployed(api, create_vault(api, "reconnect-vault")["id"])
    agent = ScriptedAgent(
        portal_server, api.post(f"/api/v1/vaults/{vault['id']}/credentials/").json()
    )
    sign_in(page, portal_server)
    page.goto(f"{portal_server.url}/vaults/{vault['id']}/jobs/")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    portal_server.stop()  # the web process goes away: the page's socket drops
    expect(page.locator("body")).to_have_attribute("data-live", "disconnected", timeout=10000)
    # What happens meanwhile is only in the database...
    job_id = (
        portal_server.manage(
            "shell",
            "-c",
            "from agents.models import Machine; from agents.services import jobs; "
            f"m = Machine.objects.get(pk={agent.machine_id!r}); "
            "j = jobs.open_job(None, m, kind='backup', trigger='scheduled'); "
            "jobs.finish_job(None, m, j.pk, state='completed'); print(j.pk)",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    portal_server.processes.clear()
    portal_server.start()
    # ...and the page fetches it once its socket is back.
    expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("Completed", timeout=20000)
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
