"""Alert e-mails: one per alert, or an hourly digest, as each recipient chose.

Every (alert, recipient) pair is one AlertDelivery row, unique, planned in the
transaction that raises the alert. A sender claims rows with a compare-and-set update
(a claim token) before sending, so two workers never send the same e-mail; a failed send
frees its rows for a later retry, up to ``AlertDelivery.MAX_ATTEMPTS``.
"""

import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from portal.tasks import enqueue
from vaults.models import AlertDelivery

log = logging.getLogger(__name__)

EMAIL = AlertDelivery.Channel.EMAIL
CLAIM_TIMEOUT = timedelta(minutes=10)
RETRY_AFTER = timedelta(minutes=5)


def plan(alert, recipients):
    """Deliveries for a new alert, by each recipient's choice; immediate ones are queued."""
    from vaults.alerts import preferences_of

    rows = []
    for user in recipients:
        mode = preferences_of(user).email_alerts
        if mode == "off" or not user.email:
            continue
        rows.append(AlertDelivery(alert=alert, channel=EMAIL, user=user, digest=mode == "digest"))
    AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    if any(not row.digest for row in rows):
        enqueue("vaults.alert_mail.send_alert_emails", str(alert.pk))


def _claim(queryset, now):
    """Claim the unsent rows of ``queryset`` for this worker; their token, or None."""
    token = uuid.uuid4()
    claimed = (
        queryset.filter(sent_at__isnull=True, failed_at__isnull=True)
        .filter(Q(claim__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
        .update(claim=token, claimed_at=now)
    )
    return token if claimed else None


def _send(deliveries, message, now) -> bool:
    ids = [delivery.pk for delivery in deliveries]
    try:
        message.send()
    except Exception as exc:  # SMTP and network errors alike: try again later
        log.warning("alert e-mail to %s failed: %s", message.to, exc)
        AlertDelivery.objects.filter(pk__in=ids).update(
            claim=None,
            claimed_at=None,
            attempts=F("attempts") + 1,
            last_error=str(exc)[:500],
            next_attempt_at=now + RETRY_AFTER,
        )
        AlertDelivery.objects.filter(pk__in=ids, attempts__gte=AlertDelivery.MAX_ATTEMPTS).update(
            failed_at=now
        )
        return False
    AlertDelivery.objects.filter(pk__in=ids).update(
        sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return True


def _absolute(path: str) -> str:
    return settings.PORTAL_URL.rstrip("/") + path


def _raised_at(alert) -> str:
    local = timezone.localtime(alert.raised_at)
    return f"{local:%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"


def _alert_lines(alert) -> list[str]:
    from vaults.alerts import MACHINE_KINDS, alert_link, describe

    lines = [
        f"{alert.get_kind_display()}",
        _("Severity: %(severity)s") % {"severity": alert.get_severity_display()},
    ]
    if alert.vault_id:
        lines.append(_("Vault: %(vault)s") % {"vault": alert.vault.name})
    else:
        lines.append(_("Directory: %(name)s") % {"name": alert.tenant.name})
    if alert.kind in MACHINE_KINDS:
        lines.append(_("Server: %(name)s") % {"name": alert.subject_name})
    lines += [
        _("Raised: %(time)s") % {"time": _raised_at(alert)},
        _("State now: %(state)s") % {"state": alert.get_state_display()},
        "",
        describe(alert),
        "",
        _("View the alert: %(url)s") % {"url": _absolute(alert_link(alert))},
    ]
    return lines


def _footer() -> list[str]:
    return [
        "",
        "-- ",
        _(
            "You receive this because you have a role on the resource. Choose one e-mail per alert, an hourly digest or no e-mail in your settings: %(url)s"
        )
        % {"url": _absolute(reverse("preferences"))},
    ]


def _message(user, subject, lines, connection):
    return EmailMessage(
        subject=f"[Backup Portal] {subject}",
        body="\n".join(str(line) for line in lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        connection=connection,
    )


def _single(alert, user, connection):
    from vaults.alerts import preferences_of

    prefs = preferences_of(user)
    with translation.override(prefs.language), timezone.override(prefs.time_zone):
        where = alert.vault.name if alert.vault_id else alert.tenant.name
        subject = _("%(severity)s alert: %(alert)s – %(subject)s (%(where)s)") % {
            "severity": alert.get_severity_display(),
            "alert": alert.get_kind_display(),
            "subject": alert.subject_name,
            "where": where,
        }
        return _message(user, subject, _alert_lines(alert) + _footer(), connection)


def _digest(user, alerts, connection):
    from vaults.alerts import preferences_of

    prefs = preferences_of(user)
    with translation.override(prefs.language), timezone.override(prefs.time_zone):
        count = len(alerts)
        subject = ngettext(
            "%(count)s new alert in the last hour", "%(count)s new alerts in the last hour", count
        ) % {"count": count}
        lines = [subject, ""]
        for alert in alerts:
            first, *rest = _alert_lines(alert)
            lines.append(f"• [{alert.get_severity_display()}] {first}")
            lines += ["  " + line if line else "" for line in rest]
            lines.append("")
        return _message(user, subject, lines + _footer(), connection)


def _claimed(token):
    return (
        AlertDelivery.objects.filter(claim=token)
        .select_related("alert__vault", "alert__tenant", "user__preferences")
        .order_by("user_id", "alert__raised_at")
    )


def send_alert_emails(alert_id, now=None) -> int:
    """The task queued when an alert is raised: one e-mail per "each" recipient."""
    now = now or timezone.now()
    token = _claim(
        AlertDelivery.objects.filter(alert_id=alert_id, channel=EMAIL, digest=False), now
    )
    if token is None:
        return 0
    sent = 0
    with get_connection() as connection:
        for delivery in _claimed(token):
            message = _single(delivery.alert, delivery.user, connection)
            sent += _send([delivery], message, now)
    return sent


def send_digests(now=None) -> int:
    """Hourly: one e-mail per "digest" recipient listing the alerts raised since the last."""
    now = now or timezone.now()
    pending = AlertDelivery.objects.filter(channel=EMAIL, digest=True).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    token = _claim(pending, now)
    if token is None:
        return 0
    by_user = defaultdict(list)
    for delivery in _claimed(token):
        by_user[delivery.user].append(delivery)
    sent = 0
    with get_connection() as connection:
        for user, deliveries in by_user.items():
            message = _digest(user, [d.alert for d in deliveries], connection)
            sent += _send(deliveries, message, now)
    return sent


def retry_unsent(now=None) -> int:
    """Per-alert e-mails whose send failed or whose task was lost: try them again."""
    now = now or timezone.now()
    stale = (
        AlertDelivery.objects.filter(
            channel=EMAIL, digest=False, sent_at__isnull=True, failed_at__isnull=True
        )
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
        .filter(created_at__lt=now - RETRY_AFTER)
        .values_list("alert_id", flat=True)
        .distinct()
    )
    return sum(send_alert_emails(alert_id, now) for alert_id in list(stale[:500]))
