import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.services


def test_sign_in_navigate_blades_breadcrumbs_bell_and_search(portal_server, page):
    sign_in(page, portal_server)
    expect(page.locator(".account-directory")).to_have_text("CONTOSO")
    expect(page.locator(".bell")).to_be_visible()
    screenshot(page, "shell-home")

    page.click("nav.leftnav >> text=Subscriptions")
    page.click("text=Contoso Production")
    # The subscription opens as a blade to the right of the list, with its own URL.
    expect(page.locator("#blades > .blade")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/subscriptions/[0-9a-f-]{36}/$"))
    expect(page.locator("#breadcrumb")).to_contain_text("Home")
    expect(page.locator("#breadcrumb")).to_contain_text("Contoso Production")

    page.click(".resource-menu >> text=Resource groups")
    page.click("text=backup-rg")
    expect(page.locator("#blades > .blade")).to_have_count(2)
    expect(page.locator("#blades > .blade").last).to_contain_text("Essentials")
    expect(page.locator("#breadcrumb")).to_contain_text("Resource groups")
    screenshot(page, "shell-resource-group-blade")

    # Reload shows the same blade, Esc closes the top one.
    page.reload()
    expect(page.locator(".blade h1")).to_have_text("backup-rg")

    page.click(".bell")
    expect(page.locator("#notifications-panel")).to_be_visible()
    expect(page.locator("#notifications-body")).to_contain_text("No new notifications")
    page.keyboard.press("Escape")
    expect(page.locator("#notifications-panel")).to_be_hidden()

    page.fill("#global-search", "Recovery Services")
    expect(page.locator("#search-results")).to_contain_text("Recovery Services vaults")
    page.fill("#global-search", "backup")
    expect(page.locator("#search-results")).to_contain_text("backup-rg")
    screenshot(page, "shell-search")
    page.click("#search-results >> text=backup-rg")
    expect(page.locator(".blade h1")).to_have_text("backup-rg")


def test_phone_width_and_japanese(portal_server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page = context.new_page()
    sign_in(page, portal_server)
    page.goto(portal_server.url + "/account/settings/")
    page.select_option("#id_language", "ja")
    page.select_option("#id_time_zone", "Asia/Tokyo")
    page.click("form.form button[type=submit]")
    page.goto(portal_server.url + "/resource-groups/")
    expect(page.locator(".blade h1")).to_have_text("リソース グループ")
    expect(page.locator(".leftnav")).to_be_hidden()
    page.click("[data-action=toggle-nav]")
    expect(page.locator(".leftnav")).to_be_visible()
    screenshot(page, "shell-phone-ja")
    context.close()
