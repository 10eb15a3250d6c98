"""The Schedule Backup wizard in a real browser: choices follow the schedule, errors link to
their tab, the confirmation shows the summary and the next ten runs; then assignment and
throttling of a registered server."""

import pytest
from playwright.sync_api import expect

from tests.e2e.agent_api import ScriptedAgent, create_vault, tenant_api, wait_deployed
from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.services


def test_policy_wizard_through_to_confirmation_then_assign_and_throttle(portal_server, page):
    server = portal_server
    api = tenant_api(server)
    vault = wait_deployed(api, create_vault(api, name="policy-vault")["id"])
    assert vault["state"] == "succeeded"
    credentials = api.post(f"/api/v1/vaults/{vault['id']}/credentials/").json()
    agent = ScriptedAgent(server, credentials, host="web-01")

    sign_in(page, server)
    page.goto(f"{server.url}/vaults/{vault['id']}/policies/")
    expect(page.locator(".resource-menu a.active")).to_have_text("Backup policies")
    expect(page.locator(".blade-content")).to_contain_text("No backup policies in this vault yet.")
    page.click("text=Create backup policy")
    expect(page.locator(".blade h1")).to_have_text("Create backup policy")

    # Select items
    page.fill("#id_name", "Twice a fortnight")
    page.fill("#id_items", "/srv/data\n/etc")
    page.check("#id_system_state")
    page.click("button[data-add-row=exclusions]")
    rows = page.locator("#exclusions tbody tr")
    expect(rows).to_have_count(2)
    rows.nth(0).locator("input[name=exclusion_folder]").fill("/srv/data/cache")
    rows.nth(1).locator("input[name=exclusion_pattern]").fill("*.tmp")
    rows.nth(1).locator("select").select_option("no")
    screenshot(page, "policy-wizard-items")
    page.click("[data-panel=items] >> text=Next: Backup schedule >")

    # Specify backup schedule: weekly on Sunday and Wednesday, every 2 weeks, two times
    schedule = page.locator("[data-panel=schedule]")
    expect(schedule).to_be_visible()
    expect(page.locator("[data-weekly-only]")).to_be_hidden()
    page.check("input[name=frequency][value=weekly]")
    expect(page.locator("[data-weekly-only]")).to_be_visible()
    page.check("input[name=weekdays][value='6']")
    page.check("input[name=weekdays][value='2']")
    expect(page.locator("[data-anchor]")).to_be_hidden()
    page.select_option("#id_every_weeks", "2")
    expect(page.locator("[data-anchor]")).to_be_visible()
    times = page.locator("input[name=times]")
    times.nth(0).fill("09:30")
    times.nth(1).fill("01:00")
    page.fill("#id_time_zone", "Europe/Berln")  # a typo the server explains
    screenshot(page, "policy-wizard-schedule")
    page.click("[data-panel=schedule] >> text=Next: Retention policy >")

    # Select retention policy: only the choices that fit the schedule are offered
    daily = page.locator("[data-rule=daily]")
    expect(daily.locator("input[name=daily_enabled]")).to_be_disabled()
    expect(daily).to_contain_text("Daily retention needs a daily schedule.")
    weekly = page.locator("[data-rule=weekly]")
    weekly.locator("input[name=weekly_enabled]").check()
    expect(weekly.locator("input[name=weekly_weekdays][value='6']")).to_be_enabled()
    expect(weekly.locator("input[name=weekly_weekdays][value='5']")).to_be_disabled()
    weekly.locator("input[name=weekly_weeks]").fill("8")
    monthly = page.locator("[data-rule=monthly]")
    monthly.locator("input[name=monthly_enabled]").check()
    expect(monthly.locator("input[data-by=day]")).to_be_disabled()
    monthly.locator("input[name=monthly_weeks][value=first]").check()
    monthly.locator("input[name=monthly_weeks][value=last]").uncheck()
    monthly.locator("input[name=monthly_weekdays][value='2']").check()
    monthly.locator("input[name=monthly_weekdays][value='6']").uncheck()
    monthly.locator("input[name=monthly_months]").fill("12")
    screenshot(page, "policy-wizard-retention")
    page.click("[data-panel=retention] >> text=Next: Initial backup type >")

    # Choose initial backup type
    page.check("input[name=initial_backup][value=offline]")
    page.click("[data-panel=initial] >> text=Next: Confirmation >")

    # The typo is refused with what to change; its link opens the schedule tab
    banner = page.locator(".banner-error")
    expect(banner).to_contain_text(
        "Unknown time zone 'Europe/Berln'. Use an IANA name such as Europe/Berlin."
    )
    screenshot(page, "policy-wizard-error")
    banner.locator("a[data-tab-link=schedule]").click()
    expect(page.locator("[data-panel=schedule]")).to_be_visible()
    expect(page.locator("[data-panel=schedule] .field-error")).to_contain_text("Unknown time zone")
    page.fill("#id_time_zone", "Europe/Berlin")
    page.click("[data-panel=schedule] >> button[name=step][value=review]")

    # Confirmation: plain words, and the next ten runs in the named zone
    confirm = page.locator("[data-panel=confirm]")
    expect(confirm.locator(".banner-ok")).to_contain_text("Validation passed")
    expect(confirm).to_contain_text(
        "Every 2 weeks on Sunday and Wednesday at 01:00 and 09:30 (Europe/Berlin time)"
    )
    expect(confirm).to_contain_text("Sunday backups kept 8 weeks")
    expect(confirm).to_contain_text("First Wednesday of each month kept 12 months")
    expect(confirm).to_contain_text("Files matching *.tmp anywhere · not its subfolders")
    expect(confirm).to_contain_text("Next 10 backups (Europe/Berlin)")
    expect(confirm.locator("#next-runs li")).to_have_count(10)
    expect(confirm).to_contain_text("Offline")
    screenshot(page, "policy-wizard-confirmation")
    page.click("button[name=step][value=create]")

    # The policy's details: assign the registered server
    expect(page.locator(".blade h1")).to_have_text("Twice a fortnight")
    expect(page.locator("#flash")).to_contain_text("Backup policy Twice a fortnight created.")
    page.check(f"input[name=machine][value='{agent.machine_id}']")
    page.click("button[name=action][value=assign]")
    expect(page.locator("#flash")).to_contain_text("Machine assignments saved.")
    expect(page.locator(".policy-detail")).to_contain_text("Used by 1 server: web-01.")
    screenshot(page, "policy-detail")
    page.goto(f"{server.url}/vaults/{vault['id']}/policies/")
    expect(page.locator("table.policies tbody tr")).to_have_count(1)
    expect(page.locator("table.policies td.num")).to_have_text("1")
    screenshot(page, "policy-list")

    # Throttling for the server: a rate out of range is refused with what to change
    page.goto(f"{server.url}/machines/{agent.machine_id}/throttling/")
    expect(page.locator("#breadcrumb")).to_contain_text("policy-vault")
    expect(page.locator("#breadcrumb")).to_contain_text("web-01")
    page.check("#id_enabled")
    page.fill("#id_work_start", "08:00")
    page.fill("#id_work_end", "18:00")
    page.fill("#id_work_hours_value", "100")
    page.select_option("select[name=work_hours_unit]", "kbps")
    page.click("button[type=submit] >> text=Save")
    expect(page.locator(".throttling")).to_contain_text(
        "The bandwidth during work hours is 100 Kbps; raise it to at least 512 Kbps"
    )
    page.fill("#id_work_hours_value", "4")
    page.select_option("select[name=work_hours_unit]", "mbps")
    page.click("button[type=submit] >> text=Save")
    expect(page.locator("#flash")).to_contain_text("Throttling settings saved.")
    screenshot(page, "policy-throttling")
    throttling = api.get(f"/api/v1/machines/{agent.machine_id}/throttling/").json()
    assert throttling["enabled"] is True and throttling["work_hours_kbps"] == 4000
    assert throttling["work_start"] == "08:00" and throttling["work_days"] == [0, 1, 2, 3, 4]
