"""Live updates: the one helper every producer uses to push an event to open pages.

Events go out after the transaction commits, to groups named by :func:`group_name`
(per user, vault and job); the websocket consumer admits a browser only to groups its
user may see. With Redis every process sends directly. In the embedded default the
channel layer is in the web process's memory: other processes (the worker) store their
events in the outbox and the web process relays them within half a second.
"""

import asyncio
import json
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)
_in_web_process = False


def mark_web_process():
    """Called by the ASGI application: this process owns the in-memory channel layer."""
    global _in_web_process
    _in_web_process = True


def group_name(kind: str, pk) -> str:
    return f"{kind}.{pk}"


def _send_now(layer, groups, message):
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # a live update must never break the write that caused it
            log.exception("could not publish %s to %s", message.get("kind"), group)


def _message(kind: str, payload: dict, message_type: str = "portal.event") -> dict:
    # Serialized once here, not once per socket: fan-out to many pages stays cheap.
    return {
        "type": message_type,
        "kind": kind,
        "text": json.dumps({"kind": kind, "payload": payload}, default=str),
    }


def publish(groups: list[str], kind: str, payload: dict, message_type: str = "portal.event"):
    message = _message(kind, payload, message_type)

    def send():
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer) and not _in_web_process:
            from portal.models import EventOutbox

            EventOutbox.objects.create(groups=groups, kind=kind, payload=payload)
            return
        _send_now(layer, groups, message)

    transaction.on_commit(send)


class OutboxRelay:
    """Runs in the web process: forwards outbox rows to the in-memory channel layer."""

    interval = 0.5
    keep = timedelta(minutes=10)

    def __init__(self):
        self.task = None

    def ensure_running(self, layer):
        if not isinstance(layer, InMemoryChannelLayer) or (self.task and not self.task.done()):
            return
        self.task = asyncio.get_running_loop().create_task(self.run(layer))

    @database_sync_to_async
    def _latest_id(self):
        from portal.models import EventOutbox

        return EventOutbox.objects.order_by("-id").values_list("id", flat=True).first() or 0

    @database_sync_to_async
    def _fetch(self, after):
        from portal.models import EventOutbox

        EventOutbox.objects.filter(created_at__lt=timezone.now() - self.keep).delete()
        return list(
            EventOutbox.objects.filter(id__gt=after)
            .order_by("id")
            .values("id", "groups", "kind", "payload")[:500]
        )

    async def run(self, layer):
        last = await self._latest_id()
        while True:
            try:
                for row in await self._fetch(last):
                    last = row["id"]
                    message = _message(row["kind"], row["payload"])
                    for group in row["groups"]:
                        await layer.group_send(group, message)
            except Exception:
                log.exception("event relay failed; retrying")
            await asyncio.sleep(self.interval)


relay = OutboxRelay()


def job_payload(job) -> dict:
    return {
        "id": str(job.pk),
        "vault": str(job.vault_id),
        "machine": job.machine.name,
        "kind": job.kind,
        "kind_label": str(job.get_kind_display()),
        "trigger_label": str(job.get_trigger_display()),
        "state": job.state,
        "phase": job.phase,
        "percent": job.percent,
        "files_done": job.files_done,
        "bytes_scanned": job.bytes_scanned,
        "bytes_total": job.bytes_total,
        "bytes_uploaded": job.bytes_uploaded,
        "rate_bps": job.rate_bps,
        "eta_seconds": job.eta_seconds,
        "warning_count": job.warning_count,
        "error": job.error,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def publish_job(job):
    publish([group_name("vault", job.vault_id), group_name("job", job.pk)], "job", job_payload(job))


def publish_vault(vault):
    payload = {
        "id": str(vault.pk),
        "name": vault.name,
        "state": vault.state,
        "storage_bytes": vault.storage_bytes,
    }
    publish([group_name("vault", vault.pk)], "vault", payload)


def publish_notification(notification):
    payload = {
        "id": notification.pk,
        "level": notification.level,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "link_label": notification.link_label,
    }
    publish([group_name("user", notification.user_id)], "notification", payload)


def publish_machine(machine):
    payload = {"id": str(machine.pk), "vault": str(machine.vault_id), "name": machine.name}
    publish([group_name("vault", machine.vault_id)], "machine", payload)


def publish_alert(alert, user_ids=()):
    """An alert raised or resolved: to its vault's pages and to the users it concerns."""
    payload = {
        "id": str(alert.pk),
        "vault": str(alert.vault_id) if alert.vault_id else None,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
    }
    groups = [group_name("user", pk) for pk in user_ids]
    if alert.vault_id:
        groups.append(group_name("vault", alert.vault_id))
    publish(groups, "alert", payload)


def access_changed(user_id):
    publish([group_name("user", user_id)], "access", {}, message_type="access.changed")


def session_ended(user_id):
    publish([group_name("user", user_id)], "session", {}, message_type="session.ended")
