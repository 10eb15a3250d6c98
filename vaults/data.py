"""The vault's opaque data index: packs, chunks, upload leases and recovery points.

The portal sees chunk ids (keyed hashes), random pack names, sizes and offsets: enough to
deduplicate, account, expire and collect, never enough to read. A recovery point becomes
visible in one transaction, only after every blob it names is confirmed in storage.
"""

import re
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from vaults.models import Chunk, Pack, RecoveryPoint, UploadLease, Vault
from vaults.storage import DEFAULT_DOWNLOAD_TTL, DEFAULT_UPLOAD_TTL, get_blob_store

CHUNK_ID = re.compile(r"^[0-9a-f]{64}$")
PACK_NAME = re.compile(r"^[0-9a-f]{32}$")
MANIFEST_NAME = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")
MAX_BATCH = 20000
MAX_POINTS_PER_MACHINE = 9999
MAX_PACK_BYTES = 256 * 1024 * 1024


def _check_ids(ids) -> list[str]:
    if not isinstance(ids, list) or len(ids) > MAX_BATCH:
        raise ValidationError(
            {"ids": _("Send a list of at most %(max)s chunk ids.") % {"max": MAX_BATCH}}
        )
    bad = [i for i in ids if not isinstance(i, str) or not CHUNK_ID.match(i)]
    if bad:
        raise ValidationError(
            {"ids": _("%(id)r is not a chunk id (64 hex digits).") % {"id": bad[0]}}
        )
    return ids


def blob_name_for(machine, kind: str, name: str) -> str:
    if kind == "pack":
        if not PACK_NAME.match(name):
            raise ValidationError({"name": _("A pack name is 32 hex digits.")})
        return f"packs/{name}"
    if kind == "manifest":
        if not MANIFEST_NAME.match(name):
            raise ValidationError(
                {"name": _("Manifest names use letters, digits, '.', '_' and '-'.")}
            )
        return f"manifests/{machine.pk}/{name}"
    raise ValidationError(
        {"kind": _("Unknown blob kind %(kind)r; use pack or manifest.") % {"kind": kind}}
    )


def lookup_chunks(machine, ids) -> dict[str, str]:
    """Which of ``ids`` the vault already stores for this machine's key domain."""
    rows = Chunk.objects.filter(machine=machine, chunk_id__in=_check_ids(ids)).values_list(
        "chunk_id", "pack__name"
    )
    return dict(rows)


def check_storage_quota(vault, extra_bytes: int):
    tenant = vault.tenant
    used = Vault.objects.filter(tenant=tenant).aggregate(total=Sum("storage_bytes"))["total"] or 0
    if used + extra_bytes > tenant.max_storage_bytes:
        raise ValidationError(
            _(
                "The directory's storage quota (%(quota)s bytes) is used up; ask a platform operator to raise it."
            )
            % {"quota": tenant.max_storage_bytes}
        )


def lease_uploads(machine, blobs: list[dict]) -> dict[str, str]:
    """Short-lived write-only URLs for the named blobs; the leases keep them from GC."""
    vault = machine.vault
    names = {}
    total = 0
    for blob in blobs:
        size = blob.get("size")
        if not isinstance(size, int) or not 0 <= size <= MAX_PACK_BYTES:
            raise ValidationError(
                {"size": _("A blob is 0 to %(max)s bytes.") % {"max": MAX_PACK_BYTES}}
            )
        names[blob_name_for(machine, blob.get("kind", "pack"), str(blob.get("name", "")))] = size
        total += size
    check_storage_quota(vault, total)
    store = get_blob_store()
    expires = timezone.now() + DEFAULT_UPLOAD_TTL
    with transaction.atomic():
        for blob_name, size in names.items():
            UploadLease.objects.update_or_create(
                vault=vault,
                blob_name=blob_name,
                defaults={"machine": machine, "size": size, "expires_at": expires},
            )
    return {name: store.upload_url(vault.container_name, name) for name in names}


def register_pack(machine, name: str, size: int, chunks: list[dict]) -> Pack:
    """Record an uploaded pack and its chunks, once storage confirms the blob and its size."""
    vault = machine.vault
    blob_name = blob_name_for(machine, "pack", name)
    existing = Pack.objects.filter(vault=vault, name=name).first()
    if existing is not None:
        if existing.machine_id != machine.pk or existing.size != size:
            raise ValidationError(
                {"name": _("Pack %(name)s is already registered differently.") % {"name": name}}
            )
        return existing  # a retry after a lost response
    stored = get_blob_store().blob_size(vault.container_name, blob_name)
    if stored is None:
        raise ValidationError(
            {"name": _("Pack %(name)s is not in storage; upload it first.") % {"name": name}}
        )
    if stored != size:
        raise ValidationError(
            {
                "size": _("Pack %(name)s holds %(stored)s bytes, not %(size)s.")
                % {"name": name, "stored": stored, "size": size}
            }
        )
    refs = []
    for ref in chunks:
        cid, offset, length = ref.get("id"), ref.get("offset"), ref.get("length")
        if not (
            isinstance(cid, str)
            and CHUNK_ID.match(cid)
            and isinstance(offset, int)
            and isinstance(length, int)
            and offset >= 0
            and length > 0
            and offset + length <= size
        ):
            raise ValidationError(
                {"chunks": _("Chunk entry %(ref)r does not fit in the pack.") % {"ref": ref}}
            )
        refs.append((cid, offset, length))
    try:
        with transaction.atomic():
            pack = Pack.objects.create(vault=vault, machine=machine, name=name, size=size)
            # A chunk stored twice (two runs racing) keeps its first location.
            Chunk.objects.bulk_create(
                [
                    Chunk(machine=machine, pack=pack, chunk_id=c, offset=o, length=n)
                    for c, o, n in refs
                ],
                ignore_conflicts=True,
                batch_size=2000,
            )
            UploadLease.objects.filter(vault=vault, blob_name=blob_name).delete()
            account_storage(machine.vault_id, machine.pk, size)
    except IntegrityError:
        return Pack.objects.get(vault=vault, name=name)
    return pack


def account_storage(vault_id, machine_id, delta: int):
    """Add (or, negative, free) bytes in the vault's and machine's accounting, never below zero."""
    from agents.models import Machine

    new_size = Greatest(F("storage_bytes") + delta, Value(0))
    Vault.objects.filter(pk=vault_id).update(storage_bytes=new_size)
    if machine_id is not None:
        Machine.objects.filter(pk=machine_id).update(storage_bytes=new_size)


def register_manifest(machine, name: str) -> int:
    blob_name = blob_name_for(machine, "manifest", name)
    size = get_blob_store().blob_size(machine.vault.container_name, blob_name)
    if size is None:
        raise ValidationError(
            {
                "manifest": _("The manifest %(name)s is not in storage; upload it first.")
                % {"name": name}
            }
        )
    return size


def locate_chunks(source_machine, ids) -> dict[str, dict]:
    rows = Chunk.objects.filter(machine=source_machine, chunk_id__in=_check_ids(ids)).values_list(
        "chunk_id", "pack__name", "offset", "length"
    )
    return {
        cid: {"pack": pack, "offset": offset, "length": length}
        for cid, pack, offset, length in rows
    }


def download_urls(source_machine, blobs: list[dict]) -> dict[str, str]:
    """Read-only URLs for packs and manifests of ``source_machine`` (same vault only)."""
    vault = source_machine.vault
    wanted = {}
    for blob in blobs[:MAX_BATCH]:
        kind, name = blob.get("kind", "pack"), str(blob.get("name", ""))
        wanted[(kind, name)] = blob_name_for(source_machine, kind, name)
    pack_names = [name for kind, name in wanted if kind == "pack"]
    known = set(
        Pack.objects.filter(vault=vault, machine=source_machine, name__in=pack_names).values_list(
            "name", flat=True
        )
    )
    missing = [name for name in pack_names if name not in known]
    if missing:
        raise ValidationError(
            {
                "name": _("Pack %(name)s is not part of this machine's backups.")
                % {"name": missing[0]}
            }
        )
    store = get_blob_store()
    return {
        f"{kind}:{name}": store.download_url(vault.container_name, blob_name, DEFAULT_DOWNLOAD_TTL)
        for (kind, name), blob_name in wanted.items()
    }


def commit_point(machine, job, record: dict) -> RecoveryPoint:
    """Make a recovery point visible, atomically, or refuse with the reason."""
    from agents.models import Job

    packs = record.get("packs")
    if not isinstance(packs, list) or any(
        not isinstance(p, str) or not PACK_NAME.match(p) for p in packs
    ):
        raise ValidationError({"packs": _("List the point's packs by name.")})
    manifest = str(record.get("manifest", ""))
    manifest_size = register_manifest(machine, manifest)
    registered = dict(
        Pack.objects.filter(vault=machine.vault, machine=machine, name__in=packs).values_list(
            "name", "created_at"
        )
    )
    unknown = [p for p in packs if p not in registered]
    if unknown:
        raise ValidationError(
            {
                "packs": _("Pack %(name)s is not registered; upload and register it first.")
                % {"name": unknown[0]}
            }
        )
    store = get_blob_store()
    fresh = [p for p, created in registered.items() if job is None or created >= job.started_at]
    for name in fresh:
        if store.blob_size(machine.vault.container_name, f"packs/{name}") is None:
            raise ValidationError(
                {"packs": _("Pack %(name)s is missing from storage.") % {"name": name}}
            )
    if RecoveryPoint.objects.filter(machine=machine).count() >= MAX_POINTS_PER_MACHINE:
        raise ValidationError(
            _("This machine already has %(max)s recovery points, the most a machine can keep.")
            % {"max": MAX_POINTS_PER_MACHINE}
        )
    kind = RecoveryPoint.Kind.SCHEDULED
    if job is not None and job.trigger in (Job.Trigger.ADHOC, Job.Trigger.PORTAL):
        kind = RecoveryPoint.Kind.ADHOC
    if record.get("offline"):
        kind = RecoveryPoint.Kind.OFFLINE
    taken = record.get("created_at")
    taken_at = (
        datetime.fromtimestamp(taken, UTC) if isinstance(taken, int | float) else timezone.now()
    )
    with transaction.atomic():
        point = RecoveryPoint.objects.create(
            tenant=machine.tenant,
            vault=machine.vault,
            machine=machine,
            kind=kind,
            content=str(record.get("kind", "files"))[:20],
            taken_at=taken_at,
            manifest=manifest,
            files=int(record.get("files", 0)),
            dirs=int(record.get("dirs", 0)),
            bytes_scanned=int(record.get("bytes_scanned", 0)),
            bytes_new=int(record.get("bytes_new", 0)),
            bytes_stored=int(record.get("bytes_stored", 0)),
            warnings=int(record.get("warnings", 0)),
            retain_until=job.retain_until if job is not None else None,
        )
        point.packs.set(Pack.objects.filter(vault=machine.vault, name__in=packs))
        UploadLease.objects.filter(
            vault=machine.vault, blob_name=f"manifests/{machine.pk}/{manifest}"
        ).delete()
        account_storage(machine.vault_id, machine.pk, manifest_size)
    # Expiry under the policy shows at once (and points it no longer keeps expire now).
    from vaults.gc import apply_retention

    apply_retention(machine)
    point.refresh_from_db()
    return point


def expire_stale_leases(now=None) -> int:
    return UploadLease.objects.filter(
        expires_at__lt=(now or timezone.now()) - timedelta(hours=1)
    ).delete()[0]
