"""Backup alerts: raised once, resolved when their condition clears, announced everywhere.

:func:`raise_alert` and :func:`resolve_alert` are the only writers. Each raise or resolve
stores a bell notification for every user who can see the alert, sends a live event,
writes the audit log and plans the e-mails and webhook calls (sent by tasks after commit).

A condition has a key (kind and subject). At most one active alert holds a key (a
conditional unique constraint), and raising is a get-or-create inside a transaction, so
two watchdogs racing over the same condition raise it once. The watchdog checks that
find and clear conditions live in :mod:`vaults.alert_checks`.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from agents.models import Job
from portal import audit
from portal.access import Action, can, grants_for, is_operator, scoped
from portal.models import RoleAssignment
from vaults.models import Alert, AlertKind

ACTIVE, RESOLVED = Alert.State.ACTIVE, Alert.State.RESOLVED
CRITICAL, WARNING = Alert.Severity.CRITICAL, Alert.Severity.WARNING
SEVERITY = {
    AlertKind.BACKUP_FAILED: CRITICAL,
    AlertKind.RESTORE_FAILED: CRITICAL,
    AlertKind.BACKUP_MISSED: WARNING,
    AlertKind.AGENT_OFFLINE: WARNING,
    AlertKind.AGENT_OUTDATED: WARNING,
    AlertKind.CREDENTIALS_EXPIRING: WARNING,
    AlertKind.QUOTA_WARNING: WARNING,
    AlertKind.QUOTA_EXCEEDED: CRITICAL,
}
MACHINE_KINDS = (
    AlertKind.BACKUP_FAILED,
    AlertKind.RESTORE_FAILED,
    AlertKind.BACKUP_MISSED,
    AlertKind.AGENT_OFFLINE,
    AlertKind.AGENT_OUTDATED,
)
# Conditions (rather than events): resolved by hand while they persist, they stay quiet
# until they clear.
CONDITION_KINDS = (
    AlertKind.AGENT_OFFLINE,
    AlertKind.AGENT_OUTDATED,
    AlertKind.CREDENTIALS_EXPIRING,
    AlertKind.QUOTA_WARNING,
    AlertKind.QUOTA_EXCEEDED,
)


def alert_key(kind, subject_id) -> str:
    return f"{kind}:{subject_id}"


def is_open():
    """Alerts that still stand for their condition: active, or silenced by hand."""
    return Q(state=ACTIVE) | Q(silenced=True)


# Who sees an alert ---------------------------------------------------------------------


def sees_directory_alerts(user, tenant, action=Action.READ) -> bool:
    """Directory-wide alerts (storage quota) concern everyone with a role in the directory."""
    if tenant is None or not user.is_authenticated:
        return False
    return is_operator(user) or any(g.allows(action) for g in grants_for(user, tenant))


def visible_alerts(user, tenant, action=Action.READ):
    """Every alert query starts here: vault alerts through the scoping, plus directory ones."""
    alerts = scoped(Alert.objects.all(), user, tenant, action)
    if sees_directory_alerts(user, tenant, action):
        alerts = alerts | Alert.objects.filter(tenant=tenant, vault__isnull=True)
    return alerts


def can_act(user, tenant, alert, action) -> bool:
    if alert.vault_id:
        return can(user, tenant, alert, action)
    return alert.tenant_id == getattr(tenant, "pk", None) and sees_directory_alerts(
        user, tenant, action
    )


def recipients_for(alert) -> list:
    """Active users with a role that can see the alert's vault (any role for directory alerts)."""
    assignments = RoleAssignment.objects.filter(tenant_id=alert.tenant_id)
    if alert.vault_id:
        vault = alert.vault
        assignments = assignments.filter(
            Q(vault_id=vault.pk)
            | Q(vault__isnull=True, resource_group_id=vault.resource_group_id)
            | Q(
                vault__isnull=True,
                resource_group__isnull=True,
                subscription_id=vault.subscription_id,
            )
        )
    users = (
        get_user_model()
        .objects.filter(pk__in=assignments.values("user_id"), is_active=True)
        .select_related("preferences")
    )
    return list(users.order_by("pk"))


def preferences_of(user):
    from portal.models import UserPreferences

    try:
        return user.preferences
    except UserPreferences.DoesNotExist:
        return UserPreferences(user=user)


# How an alert reads ---------------------------------------------------------------------


def _when(value) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"


def describe(alert) -> str:
    """One sentence about the alert, in the active language and time zone."""
    details, machine = alert.details or {}, alert.subject_name
    kind = alert.kind
    if kind in (AlertKind.BACKUP_FAILED, AlertKind.RESTORE_FAILED):
        error = (details.get("error") or "").strip()
        if kind == AlertKind.BACKUP_FAILED:
            text = _("The backup of %(machine)s failed.") % {"machine": machine}
        else:
            text = _("A restore on %(machine)s failed.") % {"machine": machine}
        return f"{text} {error}" if error else text
    if kind == AlertKind.BACKUP_MISSED:
        text = _("No backup of %(machine)s started for the run scheduled at %(time)s.") % {
            "machine": machine,
            "time": _when(details.get("scheduled_at")),
        }
        missed = details.get("missed_runs", 1)
        if missed > 1:
            text += " " + ngettext(
                "%(count)s scheduled run was missed.",
                "%(count)s scheduled runs were missed.",
                missed,
            ) % {"count": missed}
        return text
    if kind == AlertKind.AGENT_OFFLINE:
        return _(
            "The agent on %(machine)s has not contacted the portal since %(time)s (over %(minutes)s minutes)."
        ) % {
            "machine": machine,
            "time": _when(details.get("last_seen_at")),
            "minutes": details.get("minutes", ""),
        }
    if kind == AlertKind.AGENT_OUTDATED:
        return _(
            "%(machine)s runs agent %(version)s; version %(latest)s is available. Update the agent on the server."
        ) % {
            "machine": machine,
            "version": details.get("version", "?"),
            "latest": details.get("latest", "?"),
        }
    if kind == AlertKind.CREDENTIALS_EXPIRING:
        return _(
            "A vault credentials file downloaded at %(created)s expires at %(expires)s without having registered a server."
        ) % {
            "created": _when(details.get("created_at")),
            "expires": _when(details.get("expires_at")),
        }
    if kind in (AlertKind.QUOTA_WARNING, AlertKind.QUOTA_EXCEEDED):
        text = _(
            "The directory stores %(used)s of its %(quota)s storage quota (%(percent)s%%)."
        ) % {
            "used": filesizeformat(details.get("used", 0)),
            "quota": filesizeformat(details.get("quota", 0)),
            "percent": details.get("percent", 0),
        }
        if kind == AlertKind.QUOTA_EXCEEDED:
            text += " " + _("New backups are refused until data is deleted or the quota is raised.")
        return text
    return str(alert.get_kind_display())


def alert_link(alert) -> str:
    if alert.vault_id:
        return reverse("vault-alerts", args=[alert.vault_id]) + f"?alert={alert.pk}"
    return reverse("backup-center") + "#alerts"


def _announce(alert, event: str, request=None):
    """Bell, live event, audit and deliveries for a raise or a resolve (inside its transaction)."""
    from portal.events import publish_alert
    from portal.notifications import notify
    from vaults import alert_mail, webhooks

    recipients = recipients_for(alert)
    link = alert_link(alert)
    raised = event == "raised"
    for user in recipients:
        prefs = preferences_of(user)
        with translation.override(prefs.language), timezone.override(prefs.time_zone):
            label = alert.get_kind_display()
            title = label if raised else _("Resolved: %(alert)s") % {"alert": label}
            body = describe(alert)
            if alert.vault_id:
                body = _("Vault %(vault)s: %(text)s") % {"vault": alert.vault.name, "text": body}
            notify(
                user,
                alert.tenant,
                title=str(title),
                body=body,
                level=("error" if alert.severity == CRITICAL else "warning")
                if raised
                else "success",
                link=link,
                link_label=_("View alert"),
                key=f"alert:{alert.pk}",
            )
    publish_alert(alert, [user.pk for user in recipients])
    audit.record(
        request,
        f"alert.{'raise' if raised else 'resolve'}",
        alert,
        tenant=alert.tenant,
        kind=alert.kind,
        severity=alert.severity,
        resolution=alert.resolution,
    )
    if raised:
        alert_mail.plan(alert, recipients)
    webhooks.plan(alert, event)


# Raising and resolving -------------------------------------------------------------------


def raise_alert(
    kind,
    *,
    tenant,
    subject_id,
    subject_name="",
    vault=None,
    machine=None,
    job=None,
    details=None,
    now=None,
):
    """Raise the alert for (kind, subject) unless it is already open.

    Returns the new alert, or None when it was already active (its occurrence count grows)
    or silenced by hand. Safe to call from two workers at once.
    """
    now = now or timezone.now()
    key = alert_key(kind, subject_id)
    with transaction.atomic():
        if kind in CONDITION_KINDS and Alert.objects.filter(key=key, silenced=True).exists():
            return None
        again = {"occurrences": F("occurrences") + 1, "last_occurred_at": now}
        if job is not None:
            again["job"] = job
        if details:
            again["details"] = details
        if Alert.objects.filter(key=key, state=ACTIVE).update(**again):
            return None
        try:
            with transaction.atomic():  # a savepoint: losing the race leaves the caller's work
                alert = Alert.objects.create(
                    tenant=tenant,
                    vault=vault,
                    machine=machine,
                    job=job,
                    kind=kind,
                    severity=SEVERITY[kind],
                    key=key,
                    subject_id=str(subject_id),
                    subject_name=subject_name[:253],
                    details=details or {},
                    raised_at=now,
                    last_occurred_at=now,
                )
        except IntegrityError:
            return None  # another worker raised it first
        _announce(alert, "raised")
    return alert


def resolve_alert(alert, *, now=None, request=None, user=None, manual=False) -> bool:
    """Resolve an active alert once (compare-and-set); False if it was no longer active."""
    now = now or timezone.now()
    fields = {
        "state": RESOLVED,
        "resolved_at": now,
        "resolution": Alert.Resolution.MANUAL if manual else Alert.Resolution.CLEARED,
        "resolved_by": user,
        "silenced": manual and alert.kind in CONDITION_KINDS,
    }
    with transaction.atomic():
        if not Alert.objects.filter(pk=alert.pk, state=ACTIVE).update(**fields):
            return False
        for field, value in fields.items():
            setattr(alert, field, value)
        _announce(alert, "resolved", request=request)
    return True


def _with_relations(queryset):
    return queryset.select_related("tenant", "vault", "machine")


def resolve_key(kind, subject_id, now=None) -> bool:
    """The condition behind (kind, subject) cleared: resolve its alert, lift a silence."""
    key = alert_key(kind, subject_id)
    resolved = False
    alert = _with_relations(Alert.objects.filter(key=key, state=ACTIVE)).first()
    if alert is not None:
        resolved = resolve_alert(alert, now=now)
    Alert.objects.filter(key=key, silenced=True).update(silenced=False)
    return resolved


def resolve_by_user(request, alert):
    """A user with OPERATE marks an alert resolved (audited with their name)."""
    if not can_act(request.user, request.tenant, alert, Action.OPERATE):
        raise PermissionDenied(_("Your role does not allow resolving this alert."))
    if not resolve_alert(alert, request=request, user=request.user, manual=True):
        raise ValidationError(_("This alert is already resolved."))


def active_counts(alerts) -> dict:
    """{"critical": n, "warning": n, "total": n} of the active alerts in ``alerts``."""
    rows = alerts.filter(state=ACTIVE).values("severity").annotate(n=Count("id")).order_by()
    counts = {CRITICAL.value: 0, WARNING.value: 0}
    counts.update({row["severity"]: row["n"] for row in rows})
    counts["total"] = sum(counts.values())
    return counts


# Jobs ------------------------------------------------------------------------------------


def job_finished(job, now=None):
    """Called after a job's final state commits: raise on failure, resolve on success."""
    job = Job.objects.select_related("machine", "vault__tenant").filter(pk=job.pk).first()
    if job is None or job.state not in Job.FINAL_STATES:
        return
    if job.kind == Job.Kind.BACKUP:
        failed, cleared = (
            AlertKind.BACKUP_FAILED,
            (AlertKind.BACKUP_FAILED, AlertKind.BACKUP_MISSED),
        )
    elif job.kind == Job.Kind.RESTORE:
        failed, cleared = AlertKind.RESTORE_FAILED, (AlertKind.RESTORE_FAILED,)
    else:
        return
    machine = job.machine
    if job.state == Job.State.FAILED:
        raise_alert(
            failed,
            tenant=job.vault.tenant,
            vault=job.vault,
            machine=machine,
            job=job,
            subject_id=machine.pk,
            subject_name=machine.name,
            details={"error": job.error[:500], "job_id": str(job.pk)},
            now=now,
        )
    else:
        for kind in cleared:
            resolve_key(kind, machine.pk, now=now)
