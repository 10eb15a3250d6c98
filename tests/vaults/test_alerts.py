"""Backup alerts: raised once, resolved when the condition clears, e-mailed once per recipient."""

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.test import RequestFactory
from django.utils import timezone

from agents.models import AgentRelease, Job, Machine
from agents.services import jobs as job_service
from policies.models import BackupPolicy
from portal.models import AuditEvent, Notification, UserPreferences
from tests.conftest import require_service
from vaults import alert_checks, alert_mail, alerts
from vaults.models import Alert, AlertDelivery, Vault, VaultCredential

# Transactional: alerts follow jobs after commit and e-mails are queued on commit.
pytestmark = pytest.mark.django_db(transaction=True)

_keys = itertools.count()
T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # a Tuesday, 01:00 UTC


@pytest.fixture(autouse=True)
def inline_tasks(settings):
    settings.TASKS_RUN_INLINE = True
    settings.PORTAL_URL = "https://backup.example"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    cache.delete("agent-latest-release")


def make_request(user, tenant):
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
    request.user = user
    request.tenant = tenant
    return request


def make_vault(tenant, subscription, group, name="vault-a", **extra):
    return Vault.objects.create(
        tenant=tenant,
        subscription=subscription,
        resource_group=group,
        name=name,
        region_id="westeurope",
        state="succeeded",
        **extra,
    )


def make_machine(vault, name="web-01", **extra):
    return Machine.objects.create(
        tenant=vault.tenant,
        vault=vault,
        name=name,
        token_key_id=f"m{next(_keys)}",
        token_hash="x",
        agent_version=extra.pop("agent_version", "9.9.9"),
        last_seen_at=extra.pop("last_seen_at", timezone.now()),
        **extra,
    )


def make_policy(vault, times=("02:00",)):
    return BackupPolicy.objects.create(
        tenant=vault.tenant,
        vault=vault,
        name=f"daily-{next(_keys)}",
        schedule={"frequency": "daily", "times": list(times)},
        retention={"daily": {"days": 7}},
        time_zone="UTC",
    )


def backup_job(machine, started_at, state="completed", kind="backup"):
    job = Job.objects.create(
        tenant=machine.tenant,
        vault=machine.vault,
        machine=machine,
        kind=kind,
        trigger="scheduled",
        state=state,
    )
    finished = None if state == "in_progress" else started_at + timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(started_at=started_at, finished_at=finished)
    return job


@pytest.fixture
def vault(personas):
    return make_vault(personas.tenant_a, personas.sub_a, personas.rg_a)


@pytest.fixture
def machine(vault):
    return make_machine(vault)


def run_job(machine, kind="backup", state="failed", error="Disk full"):
    job = job_service.open_job(None, machine, kind=kind, trigger="scheduled")
    return job_service.finish_job(None, machine, job.pk, state=state, error=error)


def active(kind=None):
    queryset = Alert.objects.filter(state="active")
    return queryset.filter(kind=kind) if kind else queryset


# Failed jobs -------------------------------------------------------------------------------


def test_a_failed_backup_raises_one_critical_alert_and_the_next_success_resolves_it(
    personas, machine
):
    run_job(machine)
    alert = active().get()
    assert (alert.kind, alert.severity, alert.vault_id) == (
        "backup_failed",
        "critical",
        machine.vault_id,
    )
    assert "Disk full" in alerts.describe(alert)
    # every user of tenant A with a role on the vault gets a bell notification; nobody else
    notified = set(
        Notification.objects.filter(key=f"alert:{alert.pk}").values_list("user", flat=True)
    )
    assert notified == {u.pk for u in personas.all_of_a()}
    assert AuditEvent.objects.filter(action="alert.raise", resource_path=alert.path).count() == 1

    run_job(machine, error="Disk still full")  # the same condition: counted, not raised again
    alert.refresh_from_db()
    assert active().count() == 1 and alert.occurrences == 2
    assert Notification.objects.filter(key=f"alert:{alert.pk}").count() == 4

    run_job(machine, state="completed", error="")
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "cleared")
    bell = Notification.objects.get(key=f"alert:{alert.pk}", user=personas.reader)
    assert bell.title.startswith("Resolved") and bell.level == "success"
    assert AuditEvent.objects.filter(action="alert.resolve", resource_path=alert.path).exists()


def test_the_silent_job_watchdog_raises_the_failure_alert(machine):
    job = job_service.open_job(None, machine, kind="backup", trigger="scheduled")
    assert job_service.fail_silent_jobs(timezone.now() + timedelta(minutes=11)) == 1
    alert = active("backup_failed").get()
    assert alert.job_id == job.pk and "stopped reporting" in alerts.describe(alert)


def test_a_restore_failure_is_resolved_by_the_next_successful_restore_only(machine):
    run_job(machine, kind="restore")
    assert active("restore_failed").exists()
    run_job(machine, kind="backup", state="completed")
    assert active("restore_failed").exists()
    run_job(machine, kind="restore", state="completed")
    assert not active().exists()


# Missed backups (fake clock) -------------------------------------------------------------


def test_missed_backup_watchdog_with_a_fake_clock(vault):
    machine = make_machine(vault, policy=make_policy(vault))
    assert alert_checks.check_missed_backups(T0) == 0
    machine.refresh_from_db()
    assert machine.next_backup_at == T0.replace(hour=2)  # initialised from the policy

    # within the window nothing is judged; past it the run is missed, once
    assert alert_checks.check_missed_backups(T0.replace(hour=2, minute=10)) == 0
    assert alert_checks.check_missed_backups(T0.replace(hour=2, minute=16)) == 1
    assert alert_checks.check_missed_backups(T0.replace(hour=2, minute=17)) == 0
    alert = active("backup_missed").get()
    assert alert.severity == "warning" and alert.raised_at == T0.replace(hour=2, minute=16)
    assert "02:00" in alerts.describe(alert)
    machine.refresh_from_db()
    assert machine.next_backup_at == T0.replace(hour=2) + timedelta(days=1)

    # the next day a backup started three minutes late: the run counts as done
    day2 = T0 + timedelta(days=1)
    backup_job(machine, day2.replace(hour=2, minute=3))
    assert alert_checks.check_missed_backups(day2.replace(hour=2, minute=20)) == 0
    assert alert_checks.check_missed_backups(day2.replace(hour=2, minute=21)) == 0
    assert active("backup_missed").get().occurrences == 1

    # a successful backup resolves it
    alerts.job_finished(backup_job(machine, day2.replace(hour=3)))
    assert not active().exists()


def test_a_run_covered_by_a_backup_still_running_is_not_missed(vault):
    machine = make_machine(vault, policy=make_policy(vault))
    alert_checks.check_missed_backups(T0)
    backup_job(machine, T0.replace(minute=30), state="in_progress")  # started 01:30, still going
    assert alert_checks.check_missed_backups(T0.replace(hour=3)) == 0


def test_a_machine_registered_after_its_run_and_a_changed_schedule_raise_nothing(vault):
    policy = make_policy(vault)
    machine = make_machine(vault, policy=policy)
    alert_checks.check_missed_backups(T0.replace(hour=5))  # first seen after today's run
    machine.refresh_from_db()
    assert machine.next_backup_at == T0.replace(hour=2) + timedelta(days=1)
    policy.schedule = {"frequency": "daily", "times": ["22:00"]}
    policy.save()
    # tomorrow 02:00 is no longer a run: the deadline restarts from the new schedule
    assert (
        alert_checks.check_missed_backups(T0.replace(hour=2) + timedelta(days=1, minutes=30)) == 0
    )
    machine.refresh_from_db()
    assert machine.next_backup_at == T0.replace(hour=22) + timedelta(days=1)
    assert not active().exists()
    Machine.objects.filter(pk=machine.pk).update(policy=None)
    alert_checks.check_missed_backups(T0 + timedelta(days=3))
    machine.refresh_from_db()
    assert machine.next_backup_at is None


def test_two_watchdog_runs_raise_the_missed_backup_once(vault):
    machine = make_machine(vault, policy=make_policy(vault))
    alert_checks.check_missed_backups(T0)
    late = T0.replace(hour=3)
    # a second worker that read the machine before the first moved its deadline loses the
    # compare-and-set update and raises nothing
    stale = Machine.objects.select_related("policy", "vault__tenant").get(pk=machine.pk)
    assert alert_checks.check_missed_backups(late) == 1
    assert Machine.objects.filter(pk=machine.pk, next_backup_at=stale.next_backup_at).count() == 0
    assert alert_checks.check_missed_backups(late) == 0
    assert active("backup_missed").count() == 1


def test_raising_twice_keeps_one_active_alert_and_the_database_refuses_a_second(vault, machine):
    first = alerts.raise_alert(
        "agent_offline", tenant=vault.tenant, vault=vault, machine=machine, subject_id=machine.pk
    )
    again = alerts.raise_alert(
        "agent_offline", tenant=vault.tenant, vault=vault, machine=machine, subject_id=machine.pk
    )
    assert first is not None and again is None and active().count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            tenant=vault.tenant,
            kind="agent_offline",
            severity="warning",
            key=first.key,
            subject_id=str(machine.pk),
            raised_at=timezone.now(),
            last_occurred_at=timezone.now(),
        )
    # once resolved, the same condition may be raised again
    assert alerts.resolve_alert(first)
    assert alerts.raise_alert(
        "agent_offline", tenant=vault.tenant, vault=vault, machine=machine, subject_id=machine.pk
    )


@pytest.mark.services_only
def test_concurrent_watchdogs_raise_once_on_postgresql(request, vault):
    require_service(request.config, "PostgreSQL", connection.vendor == "postgresql")
    machines = [make_machine(vault, f"srv-{i}", policy=make_policy(vault)) for i in range(3)]
    alert_checks.check_missed_backups(T0)
    workers = 6
    barrier = threading.Barrier(workers)
    results, errors = [], []

    def worker():
        from django.db import connections

        try:
            barrier.wait()
            results.append(alert_checks.check_missed_backups(T0.replace(hour=3)))
            barrier.wait()
            subject = machines[0].pk
            raised = alerts.raise_alert(
                "agent_offline", tenant=vault.tenant, vault=vault, subject_id=subject
            )
            results.append(1 if raised else 0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sum(results) == len(machines) + 1
    assert active("backup_missed").count() == len(machines)
    assert active("agent_offline").count() == 1


# Agents, credentials, quota ----------------------------------------------------------------


def test_offline_agent_alert_is_raised_after_the_set_time_and_resolved_when_seen(settings, vault):
    settings.AGENT_OFFLINE_ALERT_MINUTES = 60
    now = timezone.now()
    machine = make_machine(vault, last_seen_at=now - timedelta(minutes=59))
    assert alert_checks.check_offline_agents(now)["raised"] == 0
    later = now + timedelta(minutes=2)
    assert alert_checks.check_offline_agents(later)["raised"] == 1
    assert alert_checks.check_offline_agents(later)["raised"] == 0
    Machine.objects.filter(pk=machine.pk).update(last_seen_at=later)
    assert alert_checks.check_offline_agents(later)["resolved"] == 1
    assert not active().exists()


def test_agent_older_than_the_newest_release_is_flagged_until_updated(vault):
    AgentRelease.objects.create(version="1.10.0")
    machine = make_machine(vault, agent_version="1.9.2")
    make_machine(vault, "current", agent_version="1.10.0")
    assert alert_checks.check_outdated_agents()["raised"] == 1
    assert alert_checks.check_outdated_agents()["raised"] == 0
    alert = active("agent_outdated").get()
    assert "1.9.2" in alerts.describe(alert) and "1.10.0" in alerts.describe(alert)
    Machine.objects.filter(pk=machine.pk).update(agent_version="1.10.0")
    assert alert_checks.check_outdated_agents()["resolved"] == 1


def test_credentials_about_to_expire_unused_are_flagged_until_used_or_expired(vault):
    now = timezone.now()

    def credential(hours, key):
        return VaultCredential.objects.create(
            vault=vault, key_id=key, secret_hash="x", expires_at=now + timedelta(hours=hours)
        )

    soon, later = credential(20, "k-soon"), credential(30, "k-later")
    used = credential(10, "k-used")
    used.used_at = now
    used.save()
    assert alert_checks.check_expiring_credentials(now)["raised"] == 1
    assert active("credentials_expiring").get().subject_id == str(soon.pk)
    assert alert_checks.check_expiring_credentials(now + timedelta(hours=7))["raised"] == 1  # later
    VaultCredential.objects.filter(pk=later.pk).update(used_at=now)
    result = alert_checks.check_expiring_credentials(now + timedelta(hours=21))  # soon has expired
    assert result["resolved"] == 2 and not active().exists()


def test_storage_quota_warning_at_80_and_critical_at_100_percent(personas, client_for, vault):
    tenant = personas.tenant_a
    tenant.max_storage_bytes = 1000
    tenant.save()
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=850)
    assert alert_checks.check_storage_quotas()["raised"] == 1
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=1000)
    assert alert_checks.check_storage_quotas()["raised"] == 1
    assert {a.kind: a.severity for a in active()} == {
        "quota_warning": "warning",
        "quota_exceeded": "critical",
    }
    assert alert_checks.check_storage_quotas()["raised"] == 0
    # a directory alert: every role in the directory sees it, no other directory does
    reader_alerts = client_for(personas.reader).get("/api/v1/alerts/").json()["results"]
    assert len(reader_alerts) == 2 and reader_alerts[0]["vault"] is None
    assert client_for(personas.owner_b).get("/api/v1/alerts/").json()["results"] == []
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=100)
    assert alert_checks.check_storage_quotas()["resolved"] == 2


def test_alerts_of_an_unregistered_server_resolve(vault, machine):
    run_job(machine)
    machine.delete()
    assert alert_checks.resolve_orphans() == 1
    assert not active().exists()


def test_the_watchdog_task_runs_every_check(vault, machine):
    from agents.tasks import watchdog

    result = watchdog()
    assert set(result["alerts"]) >= {"missed_backups", "offline_agents", "storage_quotas"}
    assert "error" not in result["alerts"].values()


# Manual resolution -----------------------------------------------------------------------


def test_operators_resolve_alerts_by_hand_readers_cannot(personas, client_for, vault, machine):
    run_job(machine)
    alert = active().get()
    url = f"/vaults/{vault.pk}/alerts/"
    assert (
        client_for(personas.reader).post(url, {"action": "resolve", "alert": alert.pk}).status_code
        == 403
    )
    response = client_for(personas.operator).post(
        url, {"action": "resolve", "alert": alert.pk, "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == url
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.resolved_by) == (
        "resolved",
        "manual",
        personas.operator,
    )
    event = AuditEvent.objects.get(action="alert.resolve", resource_path=alert.path)
    assert event.actor == personas.operator and event.ip_address == "127.0.0.1"
    api = client_for(personas.operator).post(f"/api/v1/alerts/{alert.pk}/resolve/")
    assert api.status_code == 400 and "already resolved" in api.content.decode()


def test_a_condition_resolved_by_hand_stays_quiet_until_it_clears(settings, personas, vault):
    settings.AGENT_OFFLINE_ALERT_MINUTES = 60
    now = timezone.now()
    machine = make_machine(vault, last_seen_at=now - timedelta(hours=2))
    alert_checks.check_offline_agents(now)
    alert = active().get()
    alerts.resolve_by_user(make_request(personas.operator, personas.tenant_a), alert)
    assert alert_checks.check_offline_agents(now)["raised"] == 0  # still offline, silenced
    Machine.objects.filter(pk=machine.pk).update(last_seen_at=now)
    alert_checks.check_offline_agents(now)
    assert not Alert.objects.filter(silenced=True).exists()
    assert alert_checks.check_offline_agents(now + timedelta(hours=2))["raised"] == 1


# Pages and API -----------------------------------------------------------------------------


def test_the_alerts_page_lists_and_filters(personas, client_for, vault, machine):
    run_job(machine)
    other = make_machine(vault, "db-01")
    alerts.raise_alert(
        "agent_offline", tenant=vault.tenant, vault=vault, machine=other, subject_id=other.pk,
        subject_name=other.name, details={"last_seen_at": timezone.now().isoformat(), "minutes": 60},
    )  # fmt: skip
    client = client_for(personas.reader)
    url = f"/vaults/{vault.pk}/alerts/"

    def rows(**params):
        page = client.get(url, params).content.decode()
        return page[page.index("<tbody>") : page.index("</tbody>")]

    page = rows()
    assert "Backup failed" in page and "Agent offline" in page and "Disk full" in page
    critical = rows(severity="critical")
    assert "Backup failed" in critical and "db-01" not in critical
    assert "No alerts match" in rows(state="resolved")
    one = active("agent_offline").get()
    single = rows(alert=one.pk)
    assert "db-01" in single and "Disk full" not in single
    overview = client.get(f"/vaults/{vault.pk}/").content.decode()
    assert "1 critical · 1 warning" in overview


def test_another_tenant_sees_no_alert_of_tenant_a(personas, client_for, vault, machine):
    run_job(machine)
    alert = active().get()
    outsider = client_for(personas.owner_b)
    assert outsider.get(f"/vaults/{vault.pk}/alerts/").status_code == 404
    assert (
        outsider.post(
            f"/vaults/{vault.pk}/alerts/", {"action": "resolve", "alert": alert.pk}
        ).status_code
        == 404
    )
    assert outsider.get(f"/api/v1/alerts/{alert.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 404
    assert outsider.get("/api/v1/alerts/").json()["results"] == []
    assert (
        outsider.post("/backup-center/", {"action": "resolve", "alert": alert.pk}).status_code
        == 404
    )
    assert active().filter(pk=alert.pk).exists()
    insider = client_for(personas.reader).get("/api/v1/alerts/", {"vault": str(vault.pk)})
    assert [a["id"] for a in insider.json()["results"]] == [str(alert.pk)]


# E-mail ----------------------------------------------------------------------------------


def test_each_recipient_gets_one_email_per_alert(personas, mailoutbox, vault, machine):
    UserPreferences.objects.create(user=personas.reader, email_alerts="off")
    run_job(machine)
    alert = active().get()
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        u.email for u in (personas.owner, personas.contributor, personas.operator)
    )
    message = mailoutbox[0]
    assert "Backup failed" in message.subject and "web-01" in message.subject
    assert f"https://backup.example/vaults/{vault.pk}/alerts/?alert={alert.pk}" in message.body
    # the task running again, the hourly retry and a repeated failure send nothing more
    assert alert_mail.send_alert_emails(alert.pk) == 0
    assert alert_mail.retry_unsent(timezone.now() + timedelta(hours=1)) == 0
    run_job(machine)
    assert len(mailoutbox) == 3
    assert AlertDelivery.objects.filter(alert=alert, sent_at__isnull=False).count() == 3


def test_a_failed_send_is_retried_and_still_sent_once(
    personas, mailoutbox, monkeypatch, vault, machine
):
    from django.core.mail import EmailMessage

    real_send = EmailMessage.send
    monkeypatch.setattr(
        EmailMessage, "send", lambda self, *a, **k: (_ for _ in ()).throw(OSError("SMTP down"))
    )
    run_job(machine)
    assert (
        mailoutbox == []
        and AlertDelivery.objects.filter(attempts=1, claim__isnull=True).count() == 4
    )
    monkeypatch.setattr(EmailMessage, "send", real_send)
    assert alert_mail.retry_unsent(timezone.now() + timedelta(minutes=10)) == 4
    assert alert_mail.retry_unsent(timezone.now() + timedelta(minutes=20)) == 0
    assert len(mailoutbox) == 4


def test_digest_mode_groups_the_hours_alerts_in_one_email(personas, mailoutbox, vault, machine):
    for user in personas.all_of_a():
        UserPreferences.objects.create(
            user=user, email_alerts="digest" if user == personas.owner else "off"
        )
    run_job(machine)
    run_job(machine, kind="restore")
    assert mailoutbox == []
    assert alert_mail.send_digests() == 1
    assert alert_mail.send_digests() == 0
    (digest,) = mailoutbox
    assert digest.to == [personas.owner.email] and "2 new alerts" in digest.subject
    assert "Backup failed" in digest.body and "Restore failed" in digest.body


def test_the_preferences_page_saves_the_email_choice(personas, client_for):
    client = client_for(personas.owner)
    response = client.post(
        "/account/settings/", {"language": "en", "time_zone": "UTC", "email_alerts": "digest"}
    )
    assert response.status_code == 302
    assert UserPreferences.objects.get(user=personas.owner).email_alerts == "digest"
    assert 'value="digest" selected' in client.get("/account/settings/").content.decode()
