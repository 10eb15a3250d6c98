"""Live updates: the one helper every producer uses to push an event to open pages.

Events go out after the transaction commits, to the groups of the tenant, the vault and
the job (named by :func:`group_name`); the websocket consumer admits a browser only to
groups its user may see.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def group_name(kind: str, pk) -> str:
    return f"{kind}.{pk}"


def publish(groups: list[str], kind: str, payload: dict):
    message = {"type": "portal.event", "kind": kind, "payload": payload}

    def send():
        layer = get_channel_layer()
        if layer is None:
            return
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception:  # a live update must never break the write that caused it
                log.exception("could not publish %s to %s", kind, group)

    transaction.on_commit(send)


def job_payload(job) -> dict:
    return {
        "id": str(job.pk),
        "vault": str(job.vault_id),
        "machine": job.machine.name,
        "kind": job.kind,
        "trigger": job.trigger,
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
    }


def publish_job(job):
    publish(
        [
            group_name("tenant", job.tenant_id),
            group_name("vault", job.vault_id),
            group_name("job", job.pk),
        ],
        "job",
        job_payload(job),
    )
