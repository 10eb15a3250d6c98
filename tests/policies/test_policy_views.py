"""Backup policy pages, the Schedule Backup wizard, throttling, and the tenant API."""

import json

import pytest
from django.urls import reverse

from agents.models import Machine
from policies.models import BackupPolicy
from portal.models import AuditEvent
from tests.policies.test_policy_services import (
    REFERENCE_RETENTION,
    fields,
    make_machine,
    make_request,
    make_vault,
)

pytestmark = pytest.mark.django_db

WIZARD = {
    "name": "Nightly",
    "items": "/home\r\nC:\\Data",
    "exclusion_folder": ["/home/tmp", ""],
    "exclusion_pattern": ["", "*.iso"],
    "exclusion_subfolders": ["yes", "no"],
    "frequency": "daily",
    "times": ["00:00", "18:00", ""],
    "every_weeks": "1",
    "anchor": "2026-01-04",
    "time_zone": "Europe/Berlin",
    "daily_enabled": "on",
    "daily_days": "7",
    "weekly_enabled": "on",
    "weekly_weekdays": ["5"],
    "weekly_weeks": "4",
    "monthly_enabled": "on",
    "monthly_by": "week",
    "monthly_weeks": ["last"],
    "monthly_weekdays": ["5"],
    "monthly_months": "12",
    "yearly_enabled": "on",
    "yearly_months": ["3"],
    "yearly_by": "week",
    "yearly_weeks": ["last"],
    "yearly_weekdays": ["5"],
    "yearly_years": "10",
    "initial_backup": "network",
}


@pytest.fixture
def vault(personas):
    return make_vault(personas, soft_delete_enabled=True)


@pytest.fixture
def owner(personas, client_for):
    return client_for(personas.owner)


def create_policy(personas, vault, **overrides):
    from policies import services

    request = make_request(personas.owner, personas.tenant_a)
    return services.create_policy(request, vault, **fields(**overrides))


def api_policy(vault, **overrides):
    return {"vault_id": str(vault.pk), **fields(**overrides)}


def post_json(client, url, data, method="post"):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, json.dumps(data), content_type="application/json")


# --- the wizard ------------------------------------------------------------------------------------


def test_wizard_review_then_finish_creates_the_reference_policy(vault, owner):
    url = reverse("vault-policy-create", args=[vault.pk])
    page = owner.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    for tab in ("Select items", "Backup schedule", "Retention policy", "Initial backup type"):
        assert tab in html
    assert "Confirmation" in html and 'name="system_state"' in html
    review = owner.post(url, {**WIZARD, "step": "review"})
    html = review.content.decode()
    assert review.status_code == 200, html
    assert "Validation passed" in html
    assert "Every day at 00:00 and 18:00 (Europe/Berlin time)" in html
    assert "Last Saturday of March kept 10 years" in html
    assert "Next 10 backups (Europe/Berlin)" in html
    assert html.count("<li><time") == 10
    assert "Files matching *.iso anywhere" in html and "Folder /home/tmp" in html
    assert not BackupPolicy.objects.exists()
    finished = owner.post(url, {**WIZARD, "step": "create"})
    policy = BackupPolicy.objects.get()
    assert finished.status_code == 302 and finished.url == reverse(
        "policy-detail", args=[policy.pk]
    )
    assert policy.retention == REFERENCE_RETENTION
    assert policy.schedule == {"frequency": "daily", "times": ["00:00", "18:00"]}
    assert policy.items == ["/home", "C:\\Data"] and policy.time_zone == "Europe/Berlin"
    assert policy.exclusions == [
        {"folder": "/home/tmp", "pattern": None, "include_subfolders": True},
        {"folder": None, "pattern": "*.iso", "include_subfolders": False},
    ]
    detail = owner.get(finished.url).content.decode()
    assert "Backup policy Nightly created." in detail and "Saturday backups kept 4 weeks" in detail


def test_confirmation_without_a_policy_zone_uses_the_users_zone(vault, owner):
    response = owner.post(
        reverse("vault-policy-create", args=[vault.pk]),
        {**WIZARD, "time_zone": "", "step": "review"},
    )
    html = response.content.decode()
    assert "Next 10 backups (UTC)" in html and "your time zone" in html


def test_weekly_schedule_every_two_weeks(vault, owner):
    data = {
        **WIZARD,
        "frequency": "weekly",
        "weekdays": ["6", "2"],
        "every_weeks": "2",
        "anchor": "2026-01-04",
        "times": ["09:30", "01:00"],
        "daily_enabled": "",
        "weekly_weekdays": ["6"],
        "monthly_weekdays": ["6"],
        "yearly_weekdays": ["6"],
        "step": "create",
    }
    data.pop("daily_enabled")
    response = owner.post(reverse("vault-policy-create", args=[vault.pk]), data)
    assert response.status_code == 302, response.content.decode()
    policy = BackupPolicy.objects.get()
    assert policy.schedule == {
        "frequency": "weekly",
        "times": ["09:30", "01:00"],
        "weekdays": [6, 2],
        "every_weeks": 2,
        "anchor": "2026-01-04",
    }
    detail = owner.get(response.url).content.decode()
    assert "Every 2 weeks on Sunday and Wednesday at 01:00 and 09:30" in detail


BAD_INPUT = [
    # (wizard overrides, API overrides, message)
    (
        {"times": ["00:00", "06:00", "12:00", "18:00"]},
        {"schedule": {"frequency": "daily", "times": ["00:00", "06:00", "12:00", "18:00"]}},
        "A daily schedule takes 1 to 3 times; remove 1 time.",
    ),
    (
        {"times": ["24:30"]},
        {"schedule": {"frequency": "daily", "times": ["24:30"]}},
        "'24:30' is not a time; use HH:MM, e.g. 09:30.",
    ),
    (
        {"daily_days": "10000"},
        {"retention": {"daily": {"days": 10000}}},
        "Keep daily backups for 7 to 9999 days; reduce 10000 to 9999.",
    ),
    (
        {"weekly_weeks": "2"},
        {"retention": {"daily": {"days": 7}, "weekly": {"weekdays": [5], "weeks": 2}}},
        "The vault's security settings require keeping weekly backups at least 4 weeks; "
        "increase 2 to at least 4.",
    ),
    (
        {
            "frequency": "weekly",
            "weekdays": ["6", "2"],
            "daily_enabled": "",
            "weekly_weekdays": ["5"],
        },
        {
            "schedule": {"frequency": "weekly", "times": ["01:00"], "weekdays": [6, 2]},
            "retention": {"weekly": {"weekdays": [5], "weeks": 4}},
        },
        "Weekly retention on Saturday needs a backup on Saturday; the schedule runs on "
        "Sunday and Wednesday.",
    ),
    (
        {"time_zone": "Europe/Atlantis"},
        {"time_zone": "Europe/Atlantis"},
        "Unknown time zone 'Europe/Atlantis'. Use an IANA name such as Europe/Berlin.",
    ),
    (
        {"monthly_by": "day", "monthly_days": ["31"]},
        {"retention": {"daily": {"days": 7}, "monthly": {"months": 12, "days_of_month": [31]}}},
        None,  # the wizard offers 1-28 and Last; the API explains the same rule
    ),
]


@pytest.mark.parametrize("wizard, api, message", BAD_INPUT)
def test_bad_input_gets_the_same_message_in_the_wizard_and_the_api(
    vault, owner, wizard, api, message
):
    response = owner.post(
        reverse("vault-policy-create", args=[vault.pk]), {**WIZARD, **wizard, "step": "create"}
    )
    html = response.content.decode()
    assert response.status_code == 400 and "Validation failed." in html
    api_response = post_json(owner, "/api/v1/policies/", api_policy(vault, **api))
    assert api_response.status_code == 400
    api_messages = [m for ms in api_response.json().values() for m in ms]
    if message is None:
        message = "Days of the month are 1 to 28 or 'last'; remove 31 from monthly retention."
        assert "Select a valid choice" in html
    else:
        from django.utils.html import escape

        assert escape(message) in html, html
    assert message in api_messages, api_messages
    assert not BackupPolicy.objects.exists()


def test_errors_link_to_their_tab(vault, owner):
    response = owner.post(
        reverse("vault-policy-create", args=[vault.pk]),
        {**WIZARD, "name": "", "time_zone": "Nowhere", "step": "review"},
    )
    html = response.content.decode()
    assert '<a href="#" data-tab-link="items">Select items</a>: Give the policy a name.' in html
    assert '<a href="#" data-tab-link="schedule">Backup schedule</a>: Unknown time zone' in html
    assert 'class="tab-error"' in html


# --- list and details ------------------------------------------------------------------------------


def test_policy_list_counts_the_machines_using_each(
    personas, vault, owner, django_assert_max_num_queries
):
    daily = create_policy(personas, vault, name="Daily")
    create_policy(personas, vault, name="Spare")
    for n in range(3):
        make_machine(vault, f"web-{n}", policy=daily)
    make_machine(vault, "idle")
    with django_assert_max_num_queries(12):
        page = owner.get(reverse("vault-policies", args=[vault.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'class="active" aria-current="page">Backup policies' in html
    rows = html.split("<tbody>")[1]
    assert rows.index(">Daily</a>") < rows.index(">Spare</a>")
    assert '<td class="num">3</td>' in rows and '<td class="num">0</td>' in rows
    assert "Every day at 00:00 and 18:00" in rows and "Daily backups kept 30 days" in rows


def test_a_policy_in_use_cannot_be_deleted_from_the_page(personas, vault, owner):
    policy = create_policy(personas, vault, name="Nightly")
    make_machine(vault, "web-01", policy=policy)
    make_machine(vault, "db-01", policy=policy)
    url = reverse("policy-detail", args=[policy.pk])
    page = owner.get(url).content.decode()
    assert "Used by 2 servers: db-01, web-01." in page and 'value="delete"' not in page
    refused = owner.post(url, {"action": "delete"}, follow=True)
    assert (
        "Policy Nightly is used by: db-01, web-01. Assign those machines another policy first."
        in refused.content.decode()
    )
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()
    Machine.objects.update(policy=None)
    deleted = owner.post(url, {"action": "delete"})
    assert deleted.status_code == 302 and deleted.url == reverse("vault-policies", args=[vault.pk])
    assert not BackupPolicy.objects.exists()


def test_assign_machines_from_the_details(personas, vault, client_for):
    policy = create_policy(personas, vault, name="Nightly")
    other = create_policy(personas, vault, name="Weekly")
    web = make_machine(vault, "web-01", policy=other)
    db = make_machine(vault, "db-01", policy=policy)
    operator = client_for(personas.operator)
    url = reverse("policy-detail", args=[policy.pk])
    response = operator.post(url, {"action": "assign", "machine": [str(web.pk)]})
    assert response.status_code == 302
    web.refresh_from_db()
    db.refresh_from_db()
    assert web.policy == policy and db.policy is None
    assert web.settings_version == 2 and db.settings_version == 2
    page = operator.get(url).content.decode()
    assert "Machine assignments saved." in page and "web-01" in page


def test_modify_keeps_values_and_immutability_refuses_a_reduction(personas, owner):
    vault = make_vault(personas, soft_delete_enabled=True, immutability="enabled")
    policy = create_policy(personas, vault, name="Nightly", retention=REFERENCE_RETENTION)
    url = reverse("policy-modify", args=[policy.pk])
    page = owner.get(url).content.decode()
    assert 'value="Nightly"' in page and "retention can be increased, not reduced" in page
    assert 'name="yearly_months" value="3" checked' in page
    data = {
        **WIZARD,
        "name": "Nightly",
        "time_zone": "",
        "items": "/home\nC:\\Data",
        "exclusion_folder": [""],
        "exclusion_pattern": ["*.tmp"],
        "exclusion_subfolders": ["yes"],
        "monthly_months": "6",
        "step": "create",
    }
    refused = owner.post(url, data)
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "Immutability is on for this vault, so retention cannot be reduced." in html
    assert "Monthly backups would be kept 6 months instead of 12 months." in html
    saved = owner.post(url, {**data, "monthly_months": "24"})
    assert saved.status_code == 302
    policy.refresh_from_db()
    assert policy.version == 2 and policy.retention["monthly"]["months"] == 24


# --- throttling ------------------------------------------------------------------------------------


def test_throttling_page_checks_ranges_and_saves(personas, vault, client_for):
    machine = make_machine(vault, "host1")
    operator = client_for(personas.operator)
    url = reverse("machine-throttling", args=[machine.pk])
    page = operator.get(url).content.decode()
    assert "Enable internet bandwidth usage throttling for backup operations" in page
    crumbs = page.split('id="breadcrumb"')[1].split("</nav>")[0]
    for label in ("Home", "Recovery Services vaults", "vault-a", "host1", "Throttling"):
        assert label in crumbs
    data = {
        "enabled": "on",
        "work_start": "09:00",
        "work_end": "17:00",
        "work_days": ["0", "1", "2", "3", "4"],
        "work_hours_value": "256",
        "work_hours_unit": "kbps",
        "off_hours_value": "1024",
        "off_hours_unit": "mbps",
    }
    refused = operator.post(url, data)
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "The bandwidth during work hours is 256 Kbps; raise it to at least 512 Kbps" in html
    assert "The bandwidth outside work hours is 1,024 Mbps; lower it to at most 1,023 Mbps" in html
    refused = operator.post(
        url,
        {
            **data,
            "work_hours_value": "2",
            "work_hours_unit": "mbps",
            "off_hours_value": "1023",
            "work_end": "08:00",
        },
    )
    assert "Work hours must end after they start; choose an end time later than 09:00." in (
        refused.content.decode()
    )
    saved = operator.post(
        url, {**data, "work_hours_value": "2", "work_hours_unit": "mbps", "off_hours_value": "1023"}
    )
    assert saved.status_code == 302
    machine.refresh_from_db()
    assert machine.throttle_enabled and machine.work_hours_kbps == 2000
    assert machine.off_hours_kbps == 1_023_000 and machine.settings_version == 2
    page = operator.get(url).content.decode()
    assert 'name="work_hours_value" id="id_work_hours_value" class="num" value="2"' in page


# --- roles and isolation ---------------------------------------------------------------------------


def test_reader_sees_no_write_controls_and_writes_are_refused(personas, vault, client_for):
    policy = create_policy(personas, vault, name="Nightly")
    machine = make_machine(vault, "host1")
    reader = client_for(personas.reader)
    listing = reader.get(reverse("vault-policies", args=[vault.pk])).content.decode()
    assert 'aria-disabled="true"' in listing
    assert reverse("vault-policy-create", args=[vault.pk]) not in listing
    detail = reader.get(reverse("policy-detail", args=[policy.pk])).content.decode()
    assert 'value="delete"' not in detail and 'value="assign"' not in detail
    assert reverse("policy-modify", args=[policy.pk]) not in detail
    throttling = reader.get(reverse("machine-throttling", args=[machine.pk])).content.decode()
    assert '<button class="btn primary" type="submit">' not in throttling
    assert "Your role cannot change throttling." in throttling
    for url, data in [
        (reverse("vault-policy-create", args=[vault.pk]), {**WIZARD, "step": "create"}),
        (reverse("policy-modify", args=[policy.pk]), {**WIZARD, "step": "create"}),
        (reverse("policy-detail", args=[policy.pk]), {"action": "delete"}),
        (reverse("policy-detail", args=[policy.pk]), {"action": "assign", "machine": [machine.pk]}),
        (reverse("machine-throttling", args=[machine.pk]), {"enabled": ""}),
    ]:
        assert reader.post(url, data).status_code == 403, url
    assert reader.get(reverse("vault-policy-create", args=[vault.pk])).status_code == 403
    assert reader.get(reverse("policy-modify", args=[policy.pk])).status_code == 403
    api = [
        ("post", "/api/v1/policies/", api_policy(vault, name="Other")),
        ("patch", f"/api/v1/policies/{policy.pk}/", {"name": "Renamed"}),
        ("delete", f"/api/v1/policies/{policy.pk}/", {}),
        ("post", f"/api/v1/policies/{policy.pk}/assign/", {"machine_ids": [str(machine.pk)]}),
        ("put", f"/api/v1/machines/{machine.pk}/policy/", {"policy_id": str(policy.pk)}),
        ("put", f"/api/v1/machines/{machine.pk}/throttling/", {"enabled": False}),
    ]
    for method, url, data in api:
        assert post_json(reader, url, data, method).status_code == 403, (method, url)
    assert reader.get(f"/api/v1/policies/{policy.pk}/").status_code == 200
    assert reader.get(f"/api/v1/machines/{machine.pk}/throttling/").status_code == 200
    policy.refresh_from_db()
    machine.refresh_from_db()
    assert policy.name == "Nightly" and machine.policy is None and machine.settings_version == 1
    assert BackupPolicy.objects.count() == 1


def test_every_new_page_and_endpoint_is_404_for_another_tenant(personas, vault, client_for):
    policy = create_policy(personas, vault, name="Nightly")
    machine = make_machine(vault, "host1", policy=policy)
    outsider = client_for(personas.owner_b)
    pages = [
        reverse("vault-policies", args=[vault.pk]),
        reverse("vault-policy-create", args=[vault.pk]),
        reverse("policy-detail", args=[policy.pk]),
        reverse("policy-modify", args=[policy.pk]),
        reverse("machine-throttling", args=[machine.pk]),
    ]
    for url in pages:
        assert outsider.get(url).status_code == 404, url
        for data in ({"action": "delete"}, {"action": "assign"}, {**WIZARD, "step": "create"}):
            assert outsider.post(url, data).status_code == 404, url
    endpoints = [
        f"/api/v1/policies/{policy.pk}/",
        f"/api/v1/policies/{policy.pk}/assign/",
        f"/api/v1/machines/{machine.pk}/policy/",
        f"/api/v1/machines/{machine.pk}/throttling/",
    ]
    for url in endpoints:
        for method in ("get", "post", "put", "patch", "delete"):
            response = post_json(outsider, url, {"machine_ids": [str(machine.pk)]}, method)
            assert response.status_code in (404, 405), (method, url)
        assert outsider.get(url).status_code in (404, 405), url
    assert outsider.get("/api/v1/policies/").json()["results"] == []
    assert outsider.get(f"/api/v1/policies/?vault={vault.pk}").json()["results"] == []
    assert post_json(outsider, "/api/v1/policies/", api_policy(vault)).status_code == 404
    # B's own policy cannot be given to A's machine, nor A's policy to B's machine
    vault_b = make_vault_b(personas)
    from policies import services

    b_request = make_request(personas.owner_b, personas.tenant_b)
    policy_b = services.create_policy(b_request, vault_b, **fields(name="B"))
    machine_b = Machine.objects.create(
        tenant=personas.tenant_b, vault=vault_b, name="b1", token_key_id="kb1", token_hash="x"
    )
    response = post_json(
        outsider, f"/api/v1/machines/{machine_b.pk}/policy/", {"policy_id": str(policy.pk)}, "put"
    )
    assert response.status_code == 404
    response = post_json(
        outsider, f"/api/v1/policies/{policy_b.pk}/assign/", {"machine_ids": [str(machine.pk)]}
    )
    assert response.status_code == 404
    machine.refresh_from_db()
    assert machine.policy == policy and machine.settings_version == 1
    assert BackupPolicy.objects.filter(tenant=personas.tenant_a).count() == 1


def make_vault_b(personas):
    from vaults.models import Vault

    return Vault.objects.create(
        tenant=personas.tenant_b,
        subscription=personas.sub_b,
        resource_group=personas.rg_b,
        name="vault-b",
        region_id="westeurope",
        state="succeeded",
    )


# --- the API ---------------------------------------------------------------------------------------


def test_api_create_list_filter_patch_delete(personas, vault, owner):
    created = post_json(
        owner, "/api/v1/policies/", api_policy(vault, retention=REFERENCE_RETENTION)
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["vault"] == str(vault.pk) and body["version"] == 1 and body["machine_count"] == 0
    assert body["schedule_summary"] == "Every day at 00:00 and 18:00"
    assert body["retention_summary"][0] == "Daily backups kept 7 days"
    other = make_vault(personas, name="vault-2")
    post_json(owner, "/api/v1/policies/", api_policy(other, name="Elsewhere"))
    assert len(owner.get("/api/v1/policies/").json()["results"]) == 2
    only = owner.get(f"/api/v1/policies/?vault={vault.pk}").json()["results"]
    assert [p["name"] for p in only] == ["Daily"]
    assert owner.get("/api/v1/policies/?vault=nonsense").json()["results"] == []
    url = f"/api/v1/policies/{body['id']}/"
    patched = post_json(owner, url, {"time_zone": "Asia/Tokyo"}, "patch")
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert patched.json()["time_zone"] == "Asia/Tokyo"
    bad = post_json(owner, url, {"time_zone": "Tokyo"}, "patch")
    assert bad.json() == {
        "time_zone": ["Unknown time zone 'Tokyo'. Use an IANA name such as Europe/Berlin."]
    }
    moved = post_json(owner, url, {"vault_id": str(other.pk)}, "patch")
    assert moved.status_code == 400 and "stays in its vault" in moved.content.decode()
    assert owner.delete(url).status_code == 204
    assert not BackupPolicy.objects.filter(pk=body["id"]).exists()
    missing = post_json(owner, "/api/v1/policies/", fields())
    assert missing.status_code == 400 and "vault_id" in missing.json()


def test_api_assignment_and_delete_in_use(personas, vault, owner):
    policy = create_policy(personas, vault, name="Nightly")
    web, db = make_machine(vault, "web-01"), make_machine(vault, "db-01")
    other_vault = make_vault(personas, name="vault-2")
    stranger = make_machine(other_vault, "elsewhere")
    response = post_json(
        owner, f"/api/v1/policies/{policy.pk}/assign/", {"machine_ids": [str(web.pk), str(db.pk)]}
    )
    assert response.status_code == 200, response.content
    assert sorted(m["name"] for m in response.json()["machines"]) == ["db-01", "web-01"]
    refused = post_json(
        owner, f"/api/v1/policies/{policy.pk}/assign/", {"machine_ids": [str(stranger.pk)]}
    )
    assert refused.status_code == 400
    assert "Choose a policy of vault-2." in refused.json()["policy"][0]
    stranger.refresh_from_db()
    assert stranger.policy is None
    detail = owner.get(f"/api/v1/policies/{policy.pk}/").json()
    assert detail["machine_count"] == 2
    in_use = owner.delete(f"/api/v1/policies/{policy.pk}/")
    assert in_use.status_code == 400
    assert in_use.json() == {
        "detail": [
            "Policy Nightly is used by: db-01, web-01. Assign those machines another policy first."
        ]
    }
    cleared = post_json(owner, f"/api/v1/machines/{web.pk}/policy/", {"policy_id": None}, "put")
    assert cleared.status_code == 200 and cleared.json()["policy_id"] is None
    assert cleared.json()["settings_version"] == 3
    across = post_json(
        owner, f"/api/v1/machines/{stranger.pk}/policy/", {"policy_id": str(policy.pk)}, "put"
    )
    assert across.status_code == 400 and "belongs to vault vault-a" in across.json()["policy"][0]


def test_api_throttling(personas, vault, client_for):
    machine = make_machine(vault, "host1")
    operator = client_for(personas.operator)
    url = f"/api/v1/machines/{machine.pk}/throttling/"
    assert operator.get(url).json() == {
        "enabled": False,
        "work_days": [],
        "work_start": None,
        "work_end": None,
        "work_hours_kbps": None,
        "off_hours_kbps": None,
        "settings_version": 1,
    }
    settings = {
        "enabled": True,
        "work_days": [0, 1, 2, 3, 4],
        "work_start": "08:30",
        "work_end": "18:00",
        "work_hours_kbps": 100,
        "off_hours_kbps": 2_000_000,
    }
    refused = post_json(operator, url, settings, "put")
    assert refused.status_code == 400
    assert refused.json() == {
        "work_hours_kbps": [
            "The bandwidth during work hours is 100 Kbps; raise it to at least 512 Kbps "
            "(the range is 512 Kbps to 1,023 Mbps)."
        ],
        "off_hours_kbps": [
            "The bandwidth outside work hours is 2,000 Mbps; lower it to at most 1,023 Mbps "
            "(the range is 512 Kbps to 1,023 Mbps)."
        ],
    }
    saved = post_json(
        operator, url, {**settings, "work_hours_kbps": 512, "off_hours_kbps": 1_023_000}, "put"
    )
    assert saved.status_code == 200
    assert saved.json() == {
        **settings,
        "work_hours_kbps": 512,
        "off_hours_kbps": 1_023_000,
        "settings_version": 2,
    }
    assert AuditEvent.objects.filter(action="machine.throttling.update").count() == 1


def test_api_rejects_odd_documents_with_messages_not_errors(vault, owner):
    odd = [
        {"schedule": "daily"},
        {"schedule": {"frequency": "daily", "times": "09:00"}},
        {"schedule": {"frequency": "weekly", "times": ["09:00"], "weekdays": "monday"}},
        {"retention": {"daily": {"days": "thirty"}}},
        {"retention": {"daily": {"days": 30, "hours": 2}}},
        {"retention": {"weekly": {"weeks": 4}}},
        {"retention": {"monthly": {"months": 3, "days_of_month": [1], "weekdays": [1]}}},
        {"retention": [1, 2]},
        {"items": "/home"},
        {"exclusions": ["*.tmp"]},
        {"exclusions": [{"folder": 5}]},
        {"system_state": "yes"},
        {"time_zone": "localtime"},
        {"name": "x" * 81},
    ]
    for overrides in odd:
        response = post_json(owner, "/api/v1/policies/", api_policy(vault, **overrides))
        assert response.status_code == 400, (overrides, response.content)
        assert all(isinstance(m, str) for ms in response.json().values() for m in ms)
    assert not BackupPolicy.objects.exists()


def test_openapi_documents_the_policy_endpoints(owner):
    schema = owner.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= paths["/api/v1/policies/"].keys()
    assert {"get", "patch", "delete"} <= paths["/api/v1/policies/{id}/"].keys()
    assert "post" in paths["/api/v1/policies/{id}/assign/"]
    assert "put" in paths["/api/v1/machines/{id}/policy/"]
    assert {"get", "put"} <= paths["/api/v1/machines/{id}/throttling/"].keys()
    components = schema["components"]["schemas"]
    assert "frequency" in components["ScheduleSchema"]["properties"]
    assert "yearly" in components["RetentionSchema"]["properties"]


def test_api_list_costs_the_same_for_many_policies(
    personas, vault, owner, django_assert_max_num_queries
):
    for n in range(8):
        policy = create_policy(personas, vault, name=f"p{n}")
        make_machine(vault, f"m{n}", policy=policy)
    with django_assert_max_num_queries(8):
        body = owner.get(f"/api/v1/policies/?vault={vault.pk}").json()
    assert [p["machine_count"] for p in body["results"]] == [1] * 8
    assert body["results"][0]["machines"][0]["name"] == "m0"


def test_pages_render_in_japanese_and_in_the_users_time_zone(personas, vault, owner):
    from portal.models import UserPreferences

    UserPreferences.objects.create(user=personas.owner, language="ja", time_zone="Asia/Tokyo")
    policy = create_policy(personas, vault, name="Nightly")
    machine = make_machine(vault, "host1", policy=policy, time_zone="Europe/Berlin")
    for url in (
        reverse("vault-policies", args=[vault.pk]),
        reverse("vault-policy-create", args=[vault.pk]),
        reverse("policy-detail", args=[policy.pk]),
        reverse("policy-modify", args=[policy.pk]),
        reverse("machine-throttling", args=[machine.pk]),
    ):
        page = owner.get(url)
        assert page.status_code == 200, url
        assert '<html lang="ja">' in page.content.decode()
    review = owner.post(
        reverse("vault-policy-create", args=[vault.pk]),
        {**WIZARD, "time_zone": "", "step": "review"},
    )
    assert "Asia/Tokyo" in review.content.decode()
    detail = owner.get(reverse("policy-detail", args=[policy.pk])).content.decode()
    assert "Europe/Berlin" in detail  # the server's next run, in the server's own zone
