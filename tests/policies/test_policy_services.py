"""Policy, assignment and throttling service functions: rules, messages, rights, audit."""

import itertools

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory

from agents.models import Machine
from policies import services, throttling
from policies.models import BackupPolicy
from portal.models import AuditEvent
from vaults.models import Vault

pytestmark = pytest.mark.django_db

_keys = itertools.count(1)

DAILY = {"frequency": "daily", "times": ["00:00", "18:00"]}
SUN_WED = {"frequency": "weekly", "times": ["01:00", "09:30"], "weekdays": [6, 2]}
REFERENCE_RETENTION = {
    "daily": {"days": 7},
    "weekly": {"weekdays": [5], "weeks": 4},
    "monthly": {"months": 12, "weeks_of_month": ["last"], "weekdays": [5]},
    "yearly": {"years": 10, "months": [3], "weeks_of_month": ["last"], "weekdays": [5]},
}


def make_request(user, tenant):
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7")
    request.user = user
    request.tenant = tenant
    return request


def make_vault(personas, name="vault-a", **extra):
    return Vault.objects.create(
        tenant=personas.tenant_a,
        subscription=personas.sub_a,
        resource_group=personas.rg_a,
        name=name,
        region_id="westeurope",
        state="succeeded",
        **extra,
    )


def make_machine(vault, name, **extra):
    return Machine.objects.create(
        tenant=vault.tenant,
        vault=vault,
        name=name,
        token_key_id=f"k{next(_keys)}",
        token_hash="x",
        **extra,
    )


def fields(**overrides):
    values = {
        "name": "Daily",
        "items": ["/home", "C:\\Data"],
        "exclusions": [{"pattern": "*.tmp"}],
        "system_state": False,
        "schedule": DAILY,
        "retention": {"daily": {"days": 30}},
    }
    values.update(overrides)
    return values


@pytest.fixture
def vault(personas):
    return make_vault(personas, soft_delete_enabled=False)


@pytest.fixture
def owner(personas):
    return make_request(personas.owner, personas.tenant_a)


def errors_of(callable_, *args, **kwargs) -> dict:
    with pytest.raises(ValidationError) as caught:
        callable_(*args, **kwargs)
    error = caught.value
    return error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}


def test_create_normalizes_the_documents_and_audits(vault, owner):
    policy = services.create_policy(
        owner,
        vault,
        **fields(
            exclusions=[
                {"folder": "/var/cache", "include_subfolders": False},
                {"pattern": " *.tmp "},
            ],
            time_zone="Europe/Berlin",
            initial_backup="offline",
        ),
    )
    policy.refresh_from_db()
    assert policy.version == 1 and policy.vault == vault and policy.tenant == vault.tenant
    assert policy.schedule == {"frequency": "daily", "times": ["00:00", "18:00"]}
    assert policy.retention == {"daily": {"days": 30}}
    assert policy.exclusions == [
        {"folder": "/var/cache", "pattern": None, "include_subfolders": False},
        {"folder": None, "pattern": "*.tmp", "include_subfolders": True},
    ]
    assert policy.time_zone == "Europe/Berlin" and policy.initial_backup == "offline"
    event = AuditEvent.objects.get(action="policy.create")
    assert event.resource_path == policy.path and event.actor == owner.user
    assert event.ip_address == "203.0.113.7"


def test_the_reference_policy_is_accepted(vault, owner):
    policy = services.create_policy(owner, vault, **fields(retention=REFERENCE_RETENTION))
    described = services.describe_policy(policy.schedule, policy.retention)
    assert described["schedule"] == "Every day at 00:00 and 18:00"
    assert described["retention"] == [
        "Daily backups kept 7 days",
        "Saturday backups kept 4 weeks",
        "Last Saturday of each month kept 12 months",
        "Last Saturday of March kept 10 years",
    ]


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        (
            {"schedule": {"frequency": "daily", "times": ["25:00"]}},
            "schedule.times",
            "'25:00' is not a time; use HH:MM, e.g. 09:30.",
        ),
        (
            {"schedule": {"frequency": "daily", "times": ["00:00", "06:00", "12:00", "18:00"]}},
            "schedule.times",
            "A daily schedule takes 1 to 3 times; remove 1 time.",
        ),
        (
            {"schedule": {"frequency": "daily", "times": []}},
            "schedule.times",
            "A daily schedule takes 1 to 3 times; add a time.",
        ),
        (
            {"schedule": {**SUN_WED, "every_weeks": 5}},
            "schedule.every_weeks",
            "Repeat every 1 to 4 weeks.",
        ),
        (
            {"retention": {"daily": {"days": 6}}},
            "retention.daily",
            "Keep daily backups for 7 to 9999 days; increase 6 to 7.",
        ),
        (
            {"retention": {"daily": {"days": 10000}}},
            "retention.daily",
            "Keep daily backups for 7 to 9999 days; reduce 10000 to 9999.",
        ),
        (
            {"retention": {"weekly": {"weekdays": [5], "weeks": 5164}}},
            "retention.weekly",
            "Keep weekly backups for 1 to 5163 weeks; reduce 5164 to 5163.",
        ),
        (
            {"retention": {"monthly": {"months": 1189, "days_of_month": ["last"]}}},
            "retention.monthly",
            "Keep monthly backups for 1 to 1188 months; reduce 1189 to 1188.",
        ),
        (
            {"retention": {"yearly": {"years": 100, "months": [3], "days_of_month": [1]}}},
            "retention.yearly",
            "Keep yearly backups for 1 to 99 years; reduce 100 to 99.",
        ),
        (
            {"schedule": SUN_WED, "retention": {"weekly": {"weekdays": [5], "weeks": 4}}},
            "retention.weekly",
            "Weekly retention on Saturday needs a backup on Saturday; the schedule runs on "
            "Sunday and Wednesday.",
        ),
        (
            {"schedule": SUN_WED, "retention": {"daily": {"days": 7}}},
            "retention.daily",
            "Daily retention needs a daily schedule; the schedule runs weekly. Remove daily "
            "retention or make the schedule daily.",
        ),
        (
            {"time_zone": "Mars/Olympus_Mons"},
            "time_zone",
            "Unknown time zone 'Mars/Olympus_Mons'. Use an IANA name such as Europe/Berlin.",
        ),
        (
            {"retention": {}},
            "retention",
            "Choose at least one retention rule, such as daily or weekly.",
        ),
        (
            {"items": ["docs"]},
            "items",
            "Use full paths such as /home or C:\\Data; docs is not one.",
        ),
        (
            {"items": [], "system_state": False},
            "items",
            "Add at least one folder or file to back up, or select System State.",
        ),
        (
            {"exclusions": [{"folder": "", "pattern": ""}]},
            "exclusions",
            "An exclusion needs a folder, a file pattern such as *.tmp, or both.",
        ),
        ({"name": "  "}, "name", "Give the policy a name."),
        (
            {"initial_backup": "courier"},
            "initial_backup",
            "Choose network or offline for the initial backup.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_that_says_what_to_change(
    vault, owner, overrides, field, message
):
    errors = errors_of(services.create_policy, owner, vault, **fields(**overrides))
    assert message in errors[field], errors
    assert not BackupPolicy.objects.exists()


def test_every_problem_is_reported_at_once(vault, owner):
    errors = errors_of(
        services.create_policy,
        owner,
        vault,
        **fields(
            name="",
            items=[],
            schedule={"frequency": "daily", "times": ["01:00", "02:00", "03:00", "04:00"]},
            time_zone="Nowhere/Land",
        ),
    )
    assert {"name", "items", "schedule.times", "time_zone"} <= errors.keys()


def test_capacity_limit_of_9999_points_per_machine(vault, owner):
    errors = errors_of(
        services.create_policy,
        owner,
        vault,
        **fields(
            schedule={"frequency": "daily", "times": ["00:00", "08:00", "16:00"]},
            retention={"daily": {"days": 9999}},
        ),
    )
    (message,) = errors["retention"]
    assert "the limit is 9,999" in message and "for example by keeping daily backups" in message


def test_security_features_raise_the_minimums(personas, owner):
    secured = make_vault(personas, name="secured", soft_delete_enabled=True)
    errors = errors_of(
        services.create_policy,
        owner,
        secured,
        **fields(retention={"daily": {"days": 7}, "weekly": {"weekdays": [0], "weeks": 2}}),
    )
    assert errors["retention.weekly"] == [
        "The vault's security settings require keeping weekly backups at least 4 weeks; "
        "increase 2 to at least 4."
    ]
    services.create_policy(
        owner,
        secured,
        **fields(retention={"daily": {"days": 7}, "weekly": {"weekdays": [0], "weeks": 4}}),
    )


def test_names_are_unique_in_a_vault_whatever_the_case(personas, vault, owner):
    services.create_policy(owner, vault, **fields(name="Nightly"))
    errors = errors_of(services.create_policy, owner, vault, **fields(name="NIGHTLY"))
    assert errors["name"] == ["This vault already has a policy named NIGHTLY; choose another name."]
    services.create_policy(owner, make_vault(personas, name="other"), **fields(name="Nightly"))


def test_roles(personas, vault):
    reader = make_request(personas.reader, personas.tenant_a)
    operator = make_request(personas.operator, personas.tenant_a)
    contributor = make_request(personas.contributor, personas.tenant_a)
    for request in (reader, operator):
        with pytest.raises(PermissionDenied):
            services.create_policy(request, vault, **fields())
    policy = services.create_policy(contributor, vault, **fields())
    machine = make_machine(vault, "host1")
    with pytest.raises(PermissionDenied):
        services.update_policy(operator, policy, name="Renamed")
    with pytest.raises(PermissionDenied):
        services.delete_policy(operator, policy)
    with pytest.raises(PermissionDenied):
        services.assign_policy(reader, machine, policy)
    with pytest.raises(PermissionDenied):
        throttling.set_throttling(reader, machine, enabled=False)
    services.assign_policy(operator, machine, policy)
    throttling.set_throttling(operator, machine, enabled=False, work_hours_kbps=1024)
    outsider = make_request(personas.owner_b, personas.tenant_b)
    with pytest.raises(PermissionDenied):
        services.assign_policy(outsider, machine, None)


def test_update_bumps_the_version_only_when_something_changes(vault, owner):
    policy = services.create_policy(owner, vault, **fields())
    services.update_policy(owner, policy, name="Daily")
    assert BackupPolicy.objects.get().version == 1
    services.update_policy(owner, policy, retention={"daily": {"days": 60}}, name="Renamed")
    stored = BackupPolicy.objects.get()
    assert stored.version == 2 and stored.name == "Renamed"
    assert stored.retention == {"daily": {"days": 60}}
    event = AuditEvent.objects.get(action="policy.update")
    assert event.details["changed"] == ["name", "retention"] and event.details["version"] == 2
    errors = errors_of(services.update_policy, owner, policy, schedule={"frequency": "hourly"})
    assert errors["schedule.frequency"] == ["Choose a daily or weekly schedule."]
    assert BackupPolicy.objects.get().version == 2


@pytest.mark.parametrize("immutability", ["enabled", "locked"])
def test_immutability_prevents_reducing_retention(personas, owner, immutability):
    vault = make_vault(personas, soft_delete_enabled=False, immutability=immutability)
    policy = services.create_policy(owner, vault, **fields(retention=REFERENCE_RETENTION))
    services.update_policy(owner, policy, name="Renamed", retention=dict(REFERENCE_RETENTION))
    assert BackupPolicy.objects.get().version == 2  # the same retention is no reduction
    reduced = {key: value for key, value in REFERENCE_RETENTION.items() if key != "weekly"}
    reduced["daily"] = {"days": 7}
    reduced["monthly"] = {"months": 6, "weeks_of_month": ["last"], "weekdays": [5]}
    (message,) = errors_of(services.update_policy, owner, policy, retention=reduced)["retention"]
    assert message.startswith(
        "Immutability is on for this vault, so retention cannot be reduced. Keep at least "
        "the current retention:"
    )
    assert "Weekly retention is removed." in message
    assert "Monthly backups would be kept 6 months instead of 12 months." in message
    longer = {**REFERENCE_RETENTION, "daily": {"days": 30}}
    services.update_policy(owner, policy, retention=longer)
    assert BackupPolicy.objects.get().retention["daily"] == {"days": 30}


def test_without_immutability_retention_may_be_reduced(vault, owner):
    policy = services.create_policy(owner, vault, **fields(retention={"daily": {"days": 60}}))
    services.update_policy(owner, policy, retention={"daily": {"days": 7}})
    assert BackupPolicy.objects.get().retention == {"daily": {"days": 7}}


def test_a_policy_in_use_cannot_be_deleted(vault, owner):
    policy = services.create_policy(owner, vault, **fields(name="Nightly"))
    web, db = make_machine(vault, "web-01"), make_machine(vault, "db-01")
    services.assign_policy(owner, web, policy)
    services.assign_policy(owner, db, policy)
    errors = errors_of(services.delete_policy, owner, policy)
    assert errors == {
        "__all__": [
            "Policy Nightly is used by: db-01, web-01. Assign those machines another policy first."
        ]
    }
    services.assign_policy(owner, web, None)
    services.assign_policy(owner, db, None)
    services.delete_policy(owner, policy)
    assert not BackupPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="policy.delete").count() == 1


def test_assignment_stays_inside_the_vault_and_bumps_settings(personas, vault, owner):
    other = make_vault(personas, name="other-vault")
    foreign = services.create_policy(owner, other, **fields(name="Other"))
    policy = services.create_policy(owner, vault, **fields())
    machine = make_machine(vault, "host1")
    errors = errors_of(services.assign_policy, owner, machine, foreign)
    assert errors["policy"] == [
        "Policy Other belongs to vault other-vault; host1 is registered with vault vault-a. "
        "Choose a policy of vault-a."
    ]
    machine.refresh_from_db()
    assert machine.policy is None and machine.settings_version == 1
    Machine.objects.filter(pk=machine.pk).update(next_backup_at="2026-01-01T00:00:00Z")
    services.assign_policy(owner, machine, policy)
    machine.refresh_from_db()
    assert machine.policy == policy and machine.settings_version == 2
    assert machine.next_backup_at is None  # the watchdog recomputes it from the new schedule
    services.assign_policy(owner, machine, policy)  # no change: nothing to tell the agent
    machine.refresh_from_db()
    assert machine.settings_version == 2
    services.assign_policy(owner, machine, None)
    machine.refresh_from_db()
    assert machine.policy is None and machine.settings_version == 3
    actions = list(AuditEvent.objects.filter(resource_path=machine.path).values_list("action"))
    assert actions.count(("machine.policy.assign",)) == 1
    assert actions.count(("machine.policy.remove",)) == 1


THROTTLE = {
    "enabled": True,
    "work_days": [0, 1, 2, 3, 4],
    "work_start": "09:00",
    "work_end": "17:00",
    "work_hours_kbps": 2048,
    "off_hours_kbps": 102400,
}


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        (
            {"work_hours_kbps": 511},
            "work_hours_kbps",
            "The bandwidth during work hours is 511 Kbps; raise it to at least 512 Kbps "
            "(the range is 512 Kbps to 1,023 Mbps).",
        ),
        (
            {"off_hours_kbps": 1_023_001},
            "off_hours_kbps",
            "The bandwidth outside work hours is 1,023,001 Kbps; lower it to at most 1,023 Mbps "
            "(the range is 512 Kbps to 1,023 Mbps).",
        ),
        (
            {"off_hours_kbps": 1024 * 1000},
            "off_hours_kbps",
            "The bandwidth outside work hours is 1,024 Mbps; lower it to at most 1,023 Mbps "
            "(the range is 512 Kbps to 1,023 Mbps).",
        ),
        (
            {"work_start": "18:00"},
            "work_end",
            "Work hours must end after they start; choose an end time later than 18:00.",
        ),
        (
            {"work_start": "25:00"},
            "work_start",
            "'25:00' is not a time; give the start of work hours as HH:MM between 00:00 and "
            "23:59, e.g. 09:00.",
        ),
        ({"work_days": []}, "work_days", "Choose at least one work day."),
        (
            {"work_days": [0, 7]},
            "work_days",
            "Days are numbered 0 (Monday) to 6 (Sunday); remove 7.",
        ),
        (
            {"work_hours_kbps": "fast"},
            "work_hours_kbps",
            "Give the bandwidth during work hours as a whole number of Kbps.",
        ),
    ],
)
def test_throttling_range_checks(vault, owner, overrides, field, message):
    machine = make_machine(vault, "host1")
    errors = errors_of(throttling.set_throttling, owner, machine, **{**THROTTLE, **overrides})
    assert message in errors[field], errors
    machine.refresh_from_db()
    assert not machine.throttle_enabled and machine.settings_version == 1


def test_throttling_limits_are_accepted_and_audited(vault, owner):
    machine = make_machine(vault, "host1")
    throttling.set_throttling(
        owner, machine, **{**THROTTLE, "work_hours_kbps": 512, "off_hours_kbps": 1_023_000}
    )
    machine.refresh_from_db()
    assert machine.throttle_enabled and machine.work_hours_kbps == 512
    assert machine.off_hours_kbps == 1_023_000 and machine.settings_version == 2
    assert machine.work_start.isoformat() == "09:00:00" and machine.work_days == [0, 1, 2, 3, 4]
    event = AuditEvent.objects.get(action="machine.throttling.update")
    assert event.actor_label == "owner@contoso.example" and event.details["work_start"] == "09:00"
    # turning it off keeps the other settings for next time
    throttling.set_throttling(owner, machine, enabled=False)
    machine.refresh_from_db()
    assert not machine.throttle_enabled and machine.work_hours_kbps == 512
    assert machine.settings_version == 3


def test_an_agent_changes_its_own_throttling_without_a_user(vault):
    machine = make_machine(vault, "host1")
    request = make_request(AnonymousUser(), None)
    throttling.set_throttling(request, machine, **THROTTLE, by_agent=True)
    machine.refresh_from_db()
    assert machine.throttle_enabled and machine.settings_version == 2
    event = AuditEvent.objects.get(action="machine.throttling.update")
    assert event.actor is None and event.actor_label == "agent:host1"
    assert event.ip_address == "203.0.113.7"
