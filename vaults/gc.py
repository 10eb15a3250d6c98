"""Retention and garbage collection: the worker's way of forgetting data safely.

Retention expires recovery points by the machine's policy (the pure engine decides);
with soft delete on, an expired point is hidden first and purged after the vault's
soft-delete period. Garbage collection then deletes packs that no point (live or
soft-deleted) references, except packs young enough to belong to a backup still in
progress or an open upload lease. Immutable vaults never lose a point before it expires,
which retention already guarantees; manual deletion is refused there.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from portal import audit
from vaults.data import account_storage
from vaults.models import Pack, RecoveryPoint, UploadLease, Vault
from vaults.retention_view import point_verdicts
from vaults.storage import get_blob_store

# A pack not yet named by a point may belong to a backup still uploading (or resuming).
UNREFERENCED_PACK_GRACE = timedelta(days=2)


def apply_retention(machine, now=None) -> int:
    """Expire the machine's points its policy no longer keeps; returns how many."""
    now = now or timezone.now()
    points = list(RecoveryPoint.objects.filter(machine=machine))
    verdicts = point_verdicts(machine, points, now)
    expired = [p for p in points if str(p.pk) in verdicts and not verdicts[str(p.pk)].keep]
    vault = machine.vault
    with transaction.atomic():
        for point in points:
            verdict = verdicts.get(str(point.pk))
            if verdict is not None:
                point.expires_at, point.kept_by = verdict.expires_at, list(verdict.rules)
        RecoveryPoint.objects.bulk_update(points, ["expires_at", "kept_by"])
        for point in expired:
            point.deleted_at = now
            point.purge_after = now + timedelta(
                days=vault.soft_delete_days if vault.soft_delete_enabled else 0
            )
            point.save(update_fields=["deleted_at", "purge_after"])
            audit.record(
                None,
                "recovery_point.expire",
                machine,
                actor_label="retention",
                point=str(point.pk),
                taken_at=point.taken_at.isoformat(),
            )
    return len(expired)


def purge_points(now=None) -> int:
    now = now or timezone.now()
    expired = RecoveryPoint.all_points.filter(deleted_at__isnull=False, purge_after__lte=now)
    _total, per_model = expired.delete()
    return per_model.get(RecoveryPoint._meta.label, 0)


def collect_garbage(vault, now=None) -> int:
    """Delete packs no point references, outside the grace period and open leases."""
    now = now or timezone.now()
    referenced = RecoveryPoint.all_points.filter(packs=OuterRef("pk"))
    candidates = (
        Pack.objects.filter(vault=vault, created_at__lt=now - UNREFERENCED_PACK_GRACE)
        .annotate(used=Exists(referenced))
        .filter(used=False)
    )
    leased_names = set(UploadLease.objects.filter(vault=vault).values_list("blob_name", flat=True))
    store = get_blob_store()
    freed = 0
    for pack in candidates[:1000]:
        if pack.blob_name in leased_names:
            continue
        with transaction.atomic():
            # Re-check under the transaction: a commit may have just referenced it.
            if RecoveryPoint.all_points.filter(packs=pack).exists():
                continue
            pack.delete()
            account_storage(vault.pk, pack.machine_id, -pack.size)
        store.delete_blob(vault.container_name, pack.blob_name)
        freed += pack.size
    return freed


def run_retention_and_gc(now=None) -> dict:
    from agents.models import Machine

    now = now or timezone.now()
    expired = sum(
        apply_retention(m, now)
        for m in Machine.objects.filter(policy__isnull=False).select_related("vault", "policy")
    )
    purged = purge_points(now)
    freed = sum(collect_garbage(v, now) for v in Vault.objects.filter(state="succeeded"))
    return {"expired": expired, "purged": purged, "freed_bytes": freed}
