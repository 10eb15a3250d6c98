"""The alert watchdog: checks run every minute (agents.tasks.watchdog) and every hour.

Each check finds new conditions through an indexed column and raises them through
:func:`vaults.alerts.raise_alert` (at most one active alert per condition), then resolves
the open alerts whose condition cleared. ``now`` is a parameter so tests can move the
clock. The missed-backup check claims each machine's deadline with a compare-and-set
update of ``Machine.next_backup_at``, so a scheduled run is judged once by one worker.
"""

import logging
from datetime import UTC, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from agents.models import Job, Machine
from portal.models import Tenant
from vaults.alerts import MACHINE_KINDS, alert_key, is_open, raise_alert, resolve_key
from vaults.models import Alert, AlertKind, StorageSample, Vault, VaultCredential

log = logging.getLogger(__name__)

# A scheduled run counts as done if a backup started this close to it (or was running).
MISSED_WINDOW = timedelta(minutes=15)
CREDENTIALS_WARNING = timedelta(hours=24)
QUOTA_LEVELS = ((AlertKind.QUOTA_WARNING, 0.8), (AlertKind.QUOTA_EXCEEDED, 1.0))
BATCH = 500


def _raise_for_machine(kind, machine, details, now):
    return raise_alert(
        kind,
        tenant=machine.vault.tenant,
        vault=machine.vault,
        machine=machine,
        subject_id=machine.pk,
        subject_name=machine.name,
        details=details,
        now=now,
    )


def _runs(machine, after, count):
    from policies.documents import upcoming_runs

    return upcoming_runs(machine.policy, machine, after, count)


def _covered(run, jobs) -> bool:
    for started, finished in jobs:
        if run - MISSED_WINDOW <= started <= run + MISSED_WINDOW:
            return True
        if started < run and (finished is None or finished >= run):
            return True  # a backup was still running when the run was due
    return False


def check_missed_backups(now=None) -> int:
    """Judge every scheduled run whose window has passed; raise "Backup missed" once.

    ``Machine.next_backup_at`` is the indexed deadline: the next scheduled run not yet
    judged. A worker claims a machine's judgment by moving the deadline with a
    compare-and-set update; a worker that loses the update skips the machine.
    """
    now = now or timezone.now()
    cutoff = now - MISSED_WINDOW
    Machine.objects.filter(policy__isnull=True, next_backup_at__isnull=False).update(
        next_backup_at=None
    )
    for machine in Machine.objects.filter(
        policy__isnull=False, next_backup_at__isnull=True
    ).select_related("policy")[:BATCH]:
        try:
            runs = _runs(machine, now, 1)
        except Exception:
            log.exception("cannot compute the schedule of machine %s", machine.pk)
            continue
        if runs:
            Machine.objects.filter(pk=machine.pk, next_backup_at__isnull=True).update(
                next_backup_at=runs[0]
            )
    raised = 0
    due = (
        Machine.objects.filter(next_backup_at__lte=cutoff)
        .select_related("policy", "vault__tenant")
        .order_by("next_backup_at")[:BATCH]
    )
    for machine in due:
        old = machine.next_backup_at
        claim = Machine.objects.filter(pk=machine.pk, next_backup_at=old)
        try:
            runs = _runs(machine, old - timedelta(microseconds=1), 64) if machine.policy else []
        except Exception:
            log.exception("cannot compute the schedule of machine %s", machine.pk)
            claim.update(next_backup_at=now + timedelta(hours=1))  # no crash loop
            continue
        if not runs:
            claim.update(next_backup_at=None)
            continue
        later = [run for run in runs if run > cutoff] or _runs(machine, cutoff, 1)
        following = later[0] if later else None
        if runs[0] != old:
            # The schedule changed since the deadline was set: start again from the new one.
            claim.update(next_backup_at=following)
            continue
        judged = [run for run in runs if run <= cutoff]
        jobs = list(
            Job.objects.filter(
                machine=machine, kind=Job.Kind.BACKUP, started_at__lte=judged[-1] + MISSED_WINDOW
            )
            .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=judged[0] - MISSED_WINDOW))
            .values_list("started_at", "finished_at")
        )
        missed = [run for run in judged if not _covered(run, jobs)]
        with transaction.atomic():
            if not claim.update(next_backup_at=following):
                continue  # another worker judged these runs
            if missed:
                details = {"scheduled_at": missed[-1].isoformat(), "missed_runs": len(missed)}
                if _raise_for_machine(AlertKind.BACKUP_MISSED, machine, details, now):
                    raised += 1
    return raised


def _open(kind):
    return Alert.objects.filter(kind=kind).filter(is_open())


def check_offline_agents(now=None) -> dict:
    now = now or timezone.now()
    minutes = settings.AGENT_OFFLINE_ALERT_MINUTES
    cutoff = now - timedelta(minutes=minutes)
    known = _open(AlertKind.AGENT_OFFLINE).filter(machine=OuterRef("pk"))
    silent = (
        Machine.objects.filter(
            Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True, registered_at__lt=cutoff)
        )
        .filter(~Exists(known))
        .select_related("vault__tenant")[:BATCH]
    )
    raised = resolved = 0
    for machine in silent:
        seen = machine.last_seen_at or machine.registered_at
        details = {"last_seen_at": seen.isoformat(), "minutes": minutes}
        raised += bool(_raise_for_machine(AlertKind.AGENT_OFFLINE, machine, details, now))
    back = _open(AlertKind.AGENT_OFFLINE).filter(machine__last_seen_at__gte=cutoff)
    for alert in back.values_list("subject_id", flat=True)[:BATCH]:
        resolved += resolve_key(AlertKind.AGENT_OFFLINE, alert, now)
    return {"raised": raised, "resolved": resolved}


def check_outdated_agents(now=None) -> dict:
    from agents.api.views import latest_release
    from agents.presentation import is_outdated

    now = now or timezone.now()
    latest = latest_release()
    known = _open(AlertKind.AGENT_OUTDATED).filter(machine=OuterRef("pk"))
    candidates = (
        Machine.objects.exclude(agent_version="")
        .exclude(agent_version=latest)
        .filter(~Exists(known))
        .select_related("vault__tenant")[:BATCH]
    )
    raised = resolved = 0
    for machine in candidates:
        if is_outdated(machine, latest):
            details = {"version": machine.agent_version, "latest": latest}
            raised += bool(_raise_for_machine(AlertKind.AGENT_OUTDATED, machine, details, now))
    for alert in _open(AlertKind.AGENT_OUTDATED).select_related("machine").iterator():
        if alert.machine is not None and not is_outdated(alert.machine, latest):
            resolved += resolve_key(AlertKind.AGENT_OUTDATED, alert.subject_id, now)
    return {"raised": raised, "resolved": resolved}


def check_expiring_credentials(now=None) -> dict:
    now = now or timezone.now()
    known = _open(AlertKind.CREDENTIALS_EXPIRING).filter(
        subject_id=Cast(OuterRef("pk"), CharField())
    )
    expiring = (
        VaultCredential.objects.filter(
            used_at__isnull=True, expires_at__gt=now, expires_at__lte=now + CREDENTIALS_WARNING
        )
        .filter(~Exists(known))
        .select_related("vault__tenant", "created_by")[:BATCH]
    )
    raised = resolved = 0
    for credential in expiring:
        vault = credential.vault
        alert = raise_alert(
            AlertKind.CREDENTIALS_EXPIRING,
            tenant=vault.tenant,
            vault=vault,
            subject_id=credential.pk,
            subject_name=credential.key_id,
            details={
                "created_at": credential.created_at.isoformat(),
                "expires_at": credential.expires_at.isoformat(),
                "created_by": credential.created_by.get_username() if credential.created_by else "",
            },
            now=now,
        )
        raised += bool(alert)
    open_ids = list(_open(AlertKind.CREDENTIALS_EXPIRING).values_list("subject_id", flat=True))
    pending = {
        str(pk)
        for pk in VaultCredential.objects.filter(
            pk__in=[int(i) for i in open_ids if i.isdigit()],
            used_at__isnull=True,
            expires_at__gt=now,
        ).values_list("pk", flat=True)
    }
    for subject in set(open_ids) - pending:
        resolved += resolve_key(AlertKind.CREDENTIALS_EXPIRING, subject, now)
    return {"raised": raised, "resolved": resolved}


def check_storage_quotas(now=None) -> dict:
    now = now or timezone.now()
    used = dict(
        Vault.objects.values("tenant")
        .annotate(total=Sum("storage_bytes"))
        .values_list("tenant", "total")
    )
    open_keys = set(
        Alert.objects.filter(kind__in=[kind for kind, _level in QUOTA_LEVELS])
        .filter(is_open())
        .values_list("key", flat=True)
    )
    raised = resolved = 0
    for tenant in Tenant.objects.all():
        total, quota = used.get(tenant.pk) or 0, tenant.max_storage_bytes
        for kind, level in QUOTA_LEVELS:
            over = quota > 0 and total >= level * quota
            is_known = alert_key(kind, tenant.pk) in open_keys
            if over and not is_known:
                details = {"used": total, "quota": quota, "percent": int(100 * total / quota)}
                alert = raise_alert(
                    kind, tenant=tenant, subject_id=tenant.pk, subject_name=tenant.name,
                    details=details, now=now,
                )  # fmt: skip
                raised += bool(alert)
            elif is_known and not over:
                resolved += resolve_key(kind, tenant.pk, now)
    return {"raised": raised, "resolved": resolved}


def resolve_orphans(now=None) -> int:
    """Alerts about a server that was unregistered: nothing is left to fix."""
    resolved = 0
    orphans = Alert.objects.filter(kind__in=MACHINE_KINDS, machine__isnull=True).filter(is_open())
    for kind, subject in orphans.values_list("kind", "subject_id")[:BATCH]:
        resolved += resolve_key(kind, subject, now)
    return resolved


def record_storage_samples(now=None) -> int:
    """Today's stored bytes per vault (UTC day); later samples of the day overwrite earlier."""
    now = now or timezone.now()
    day = now.astimezone(UTC).date()
    rows = [
        StorageSample(tenant_id=tenant, vault_id=vault, day=day, bytes=size, recorded_at=now)
        for vault, tenant, size in Vault.objects.filter(state="succeeded").values_list(
            "pk", "tenant_id", "storage_bytes"
        )
    ]
    StorageSample.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["vault", "day"],
        update_fields=["bytes", "recorded_at"],
        batch_size=500,
    )
    return len(rows)


CHECKS = (
    ("missed_backups", check_missed_backups),
    ("offline_agents", check_offline_agents),
    ("outdated_agents", check_outdated_agents),
    ("expiring_credentials", check_expiring_credentials),
    ("storage_quotas", check_storage_quotas),
    ("orphans", resolve_orphans),
)


def run_checks(now=None) -> dict:
    """The watchdog's alert checks; one failing check does not stop the others."""
    from vaults import webhooks

    now = now or timezone.now()
    results = {}
    for name, check in (*CHECKS, ("webhook_retries", webhooks.retry_due)):
        try:
            results[name] = check(now)
        except Exception:
            log.exception("alert check %s failed", name)
            results[name] = "error"
    return results


def hourly(now=None) -> dict:
    """Every hour: storage samples for the charts, digests, e-mails that failed before."""
    from vaults import alert_mail

    now = now or timezone.now()
    return {
        "storage_samples": record_storage_samples(now),
        "digests": alert_mail.send_digests(now),
        "retried_emails": alert_mail.retry_unsent(now),
    }
