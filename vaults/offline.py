"""Offline seeding: import an initial backup that arrived on a disk instead of the network.

As in the reference's "Perform the initial backup offline": the agent writes its first
backup to a staging folder (``backup-agent backup --offline-to DIR``), the disk travels to
the platform, an operator copies it to ``OFFLINE_SEED_DIR/<machine id>/``, and the tenant
starts the import from the server's blade. The worker copies the encrypted packs and
manifests into the vault's storage, registers the opaque index and commits the points as
"offline seed" recovery points; later backups then send only what changed.
"""

import io
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.models import Job
from portal import audit, events
from portal.access import Action
from portal.services import require
from portal.tasks import enqueue
from vaults import data
from vaults.storage import get_blob_store


def seed_folder(machine) -> Path:
    return Path(settings.OFFLINE_SEED_DIR) / str(machine.pk)


def _open_repository(machine):
    from backup_agent.repository import LocalRepository, RepositoryError

    folder = seed_folder(machine)
    if not (folder / "config.json").exists():
        raise ValidationError(
            _(
                "No offline seed for %(name)s at %(folder)s. Copy the staging folder from the disk there first."
            )
            % {"name": machine.name, "folder": folder}
        )
    try:
        return LocalRepository(folder, create=False)
    except RepositoryError as exc:
        raise ValidationError(
            _("The offline seed at %(folder)s is unreadable: %(error)s")
            % {"folder": folder, "error": exc}
        ) from exc


def start_offline_import(request, machine) -> Job:
    require(request.user, request.tenant, machine, Action.OPERATE)
    repository = _open_repository(machine)
    try:
        points = repository.list_points()
    finally:
        repository.close()
    if not points:
        raise ValidationError(_("The offline seed holds no recovery point."))
    with transaction.atomic():
        job = Job.objects.create(
            tenant=machine.tenant,
            vault=machine.vault,
            machine=machine,
            kind=Job.Kind.OFFLINE_IMPORT,
            trigger=Job.Trigger.PORTAL,
            phase="starting",
            report_deadline=None,
        )
        audit.record(
            request,
            "job.offline_import.start",
            job,
            tenant=machine.tenant,
            folder=str(seed_folder(machine)),
        )
        events.publish_job(job)
        enqueue("vaults.tasks.import_offline_seed", str(job.pk))
    return job


def _progress(job, **fields):
    for name, value in fields.items():
        setattr(job, name, value)
    Job.objects.filter(pk=job.pk).update(**fields)
    events.publish_job(job)


def import_offline_seed(job_id):
    """The worker's part: copy, register, commit. Safe to run again after a crash."""
    from agents.services.jobs import finish_job

    job = Job.objects.select_related("machine", "machine__vault", "vault").get(pk=job_id)
    machine = job.machine
    container = machine.vault.container_name
    store = get_blob_store()
    try:
        repository = _open_repository(machine)
    except ValidationError as exc:
        finish_job(None, machine, job.pk, state="failed", error=" ".join(exc.messages))
        return
    try:
        packs = repository.list_packs()
        total = sum(packs.values())
        _progress(job, phase="uploading", bytes_total=total, files_total=len(packs))
        done = 0
        for index, (name, size) in enumerate(sorted(packs.items()), start=1):
            with open(repository.pack_path(name), "rb") as stream:
                store.upload_stream(container, f"packs/{name}", stream, size)
            refs = [
                {"id": ref.id, "offset": ref.offset, "length": ref.length}
                for ref in repository.chunks_in_pack(name)
            ]
            data.register_pack(machine, name, size, refs)
            done += size
            _progress(job, bytes_scanned=done, bytes_uploaded=done, files_done=index)
        _progress(job, phase="committing")
        committed = None
        for point in repository.list_points():
            manifest = repository.get_blob("manifest", point.manifest)
            store.upload_stream(
                container,
                f"manifests/{machine.pk}/{point.manifest}",
                io.BytesIO(manifest),
                len(manifest),
            )
            committed = data.commit_point(machine, None, {**point.to_dict(), "offline": True})
    except Exception as exc:  # the job records why; the import can be started again
        finish_job(
            None, machine, job.pk, state="failed", error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        raise
    finally:
        repository.close()
    finish_job(
        None,
        machine,
        job.pk,
        state="completed",
        point_id=committed.pk if committed else None,
        details={"imported_at": timezone.now().isoformat(), "packs": len(packs)},
    )
