"""Outgoing webhooks per vault: alert events POSTed as JSON, signed with the webhook's secret.

The receiver checks ``X-BackupPortal-Signature: sha256=<hex HMAC-SHA256 of the body>``.
Each (alert, webhook, event) is one AlertDelivery row carrying the exact body, so retries
send the same bytes. A worker claims the row (compare-and-set) before the POST; a failure
schedules the next attempt with backoff, up to ``AlertDelivery.MAX_ATTEMPTS`` in all; the
watchdog queues attempts that fall due.
"""

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from portal import audit
from portal.access import Action
from portal.services import require
from portal.tasks import enqueue
from vaults.models import AlertDelivery, VaultWebhook

SIGNATURE_HEADER = "X-BackupPortal-Signature"
TIMEOUT = 10.0
# Minutes before attempts 2, 3, 4 and 5.
BACKOFF_MINUTES = (1, 4, 15, 60)
FIRST_ATTEMPT_GRACE = timedelta(minutes=2)
CLAIM_TIMEOUT = timedelta(minutes=2)
MAX_WEBHOOKS_PER_VAULT = 10
WEBHOOK = AlertDelivery.Channel.WEBHOOK
# Tests swap in an httpx.MockTransport.
transport = None


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_bytes(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# Managing webhooks ------------------------------------------------------------------------


def private_address(url: str) -> str | None:
    """The loopback, private or link-local address ``url`` points at, if any.

    Webhooks must not become a way to reach the portal's own network (SSRF); operators
    who need internal receivers allow them with WEBHOOKS_ALLOW_PRIVATE_ADDRESSES.
    """
    if settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        return None
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None  # unresolvable: the request fails on its own and reaches nothing
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise ValidationError(
            {"url": _("Enter an http:// or https:// URL, e.g. https://example.com/hooks/backup.")}
        ) from exc
    if len(url) > 500:
        raise ValidationError({"url": _("Use a URL of at most 500 characters.")})
    address = private_address(url)
    if address:
        raise ValidationError(
            {
                "url": _(
                    "%(address)s is a private or loopback address; webhooks go to public addresses only."
                )
                % {"address": address}
            }
        )
    return url


def create_webhook(request, vault, *, url: str, enabled: bool = True) -> VaultWebhook:
    require(request.user, request.tenant, vault, Action.WRITE)
    url = _clean_url(url)
    if VaultWebhook.objects.filter(vault=vault).count() >= MAX_WEBHOOKS_PER_VAULT:
        raise ValidationError(
            _("A vault has at most %(max)s webhooks.") % {"max": MAX_WEBHOOKS_PER_VAULT}
        )
    with transaction.atomic():
        webhook = VaultWebhook.objects.create(
            tenant=vault.tenant,
            vault=vault,
            url=url,
            secret=secrets.token_hex(32),
            enabled=enabled,
            created_by=request.user,
        )
        audit.record(request, "vault.webhook.create", vault, url=url, webhook=str(webhook.pk))
    return webhook


def update_webhook(request, webhook, *, url=None, enabled=None) -> VaultWebhook:
    require(request.user, request.tenant, webhook.vault, Action.WRITE)
    changes = {}
    if url is not None:
        changes["url"] = _clean_url(url)
    if enabled is not None:
        changes["enabled"] = bool(enabled)
    with transaction.atomic():
        for field, value in changes.items():
            setattr(webhook, field, value)
        webhook.save(update_fields=list(changes) or None)
        audit.record(
            request,
            "vault.webhook.update",
            webhook.vault,
            webhook=str(webhook.pk),
            **{k: str(v) for k, v in changes.items()},
        )
    return webhook


def delete_webhook(request, webhook):
    require(request.user, request.tenant, webhook.vault, Action.WRITE)
    with transaction.atomic():
        audit.record(
            request, "vault.webhook.delete", webhook.vault, url=webhook.url, webhook=str(webhook.pk)
        )
        webhook.delete()


# Delivering -----------------------------------------------------------------------------


def payload_for(alert, event: str) -> dict:
    from vaults.alerts import alert_link, describe

    with translation.override("en"), timezone.override("UTC"):
        text = describe(alert)
    return {
        "event": f"alert.{event}",
        "alert": {
            "id": str(alert.pk),
            "kind": alert.kind,
            "severity": alert.severity,
            "state": alert.state,
            "title": str(alert.get_kind_display()),
            "description": text,
            "subject": alert.subject_name,
            "vault": {"id": str(alert.vault_id), "name": alert.vault.name}
            if alert.vault_id
            else None,
            "machine_id": str(alert.machine_id) if alert.machine_id else None,
            "occurrences": alert.occurrences,
            "raised_at": alert.raised_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "resolution": alert.resolution or None,
            "details": alert.details,
            "url": settings.PORTAL_URL.rstrip("/") + alert_link(alert),
        },
    }


def plan(alert, event: str):
    """One delivery per enabled webhook (a vault's; every vault's for directory alerts)."""
    hooks = VaultWebhook.objects.filter(tenant_id=alert.tenant_id, enabled=True)
    if alert.vault_id:
        hooks = hooks.filter(vault_id=alert.vault_id)
    hooks = list(hooks)
    if not hooks:
        return
    payload = payload_for(alert, event)
    for webhook in hooks:
        try:
            with transaction.atomic():
                delivery = AlertDelivery.objects.create(
                    alert=alert,
                    channel=WEBHOOK,
                    event=event,
                    webhook=webhook,
                    payload={**payload, "delivery": str(uuid.uuid4())},
                    next_attempt_at=timezone.now() + FIRST_ATTEMPT_GRACE,
                )
        except IntegrityError:
            continue  # already planned
        enqueue("vaults.webhooks.deliver", delivery.pk)


def _headers(delivery, body: bytes) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": "BackupPortal-Webhook/1",
        "X-BackupPortal-Event": delivery.payload.get("event", ""),
        "X-BackupPortal-Delivery": delivery.payload.get("delivery", str(delivery.pk)),
        SIGNATURE_HEADER: sign(delivery.webhook.secret, body),
    }


def deliver(delivery_id, now=None) -> str:
    """One attempt: claim, POST with a 10 s timeout, then record success or schedule a retry."""
    now = now or timezone.now()
    token = uuid.uuid4()
    claimed = (
        AlertDelivery.objects.filter(
            pk=delivery_id, channel=WEBHOOK, sent_at__isnull=True, failed_at__isnull=True
        )
        .filter(Q(claim__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
        .update(claim=token, claimed_at=now)
    )
    if not claimed:
        return "skipped"
    delivery = AlertDelivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    if webhook is None or not webhook.enabled:
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            failed_at=now, last_error="webhook disabled", claim=None
        )
        return "disabled"
    body = body_bytes(delivery.payload)
    address = private_address(webhook.url)  # checked again: DNS may have changed
    if address:
        AlertDelivery.objects.filter(pk=delivery.pk, claim=token).update(
            failed_at=now, claim=None, last_error=f"refused: {address} is not a public address"
        )
        return "failed"
    try:
        with httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=False) as client:
            response = client.post(webhook.url, content=body, headers=_headers(delivery, body))
        ok, status = 200 <= response.status_code < 300, f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, status = False, f"{type(exc).__name__}: {exc}"[:200]
    attempts = delivery.attempts + 1
    update = {"attempts": attempts, "claim": None, "last_error": "" if ok else status[:500]}
    if ok:
        update["sent_at"] = timezone.now()
    elif attempts >= AlertDelivery.MAX_ATTEMPTS:
        update["failed_at"] = now
    else:
        update["next_attempt_at"] = now + timedelta(minutes=BACKOFF_MINUTES[attempts - 1])
    AlertDelivery.objects.filter(pk=delivery.pk, claim=token).update(**update)
    VaultWebhook.objects.filter(pk=webhook.pk).update(last_delivery_at=now, last_status=status)
    return "sent" if ok else ("failed" if "failed_at" in update else "retry")


def retry_due(now=None) -> int:
    """Watchdog: queue the attempts whose time has come (and first attempts that got lost)."""
    now = now or timezone.now()
    due = list(
        AlertDelivery.objects.filter(
            channel=WEBHOOK,
            sent_at__isnull=True,
            failed_at__isnull=True,
            next_attempt_at__lte=now,
        )
        .filter(Q(claim__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
        .values_list("pk", flat=True)[:200]
    )
    for pk in due:
        enqueue("vaults.webhooks.deliver", pk)
    return len(due)
