"""Jobs: opened, reported and finished by agents; failed by the watchdog when silent."""

from datetime import datetime, timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from agents.models import AgentCommand, Job, Machine
from portal import audit
from vaults import alerts

# An in-progress job whose agent has not reported for this long is failed by the watchdog.
REPORT_GRACE = timedelta(minutes=10)
PROGRESS_FIELDS = (
    "files_done",
    "files_total",
    "bytes_scanned",
    "bytes_total",
    "bytes_new",
    "bytes_uploaded",
    "rate_bps",
    "eta_seconds",
)
MAX_WARNINGS_KEPT = 200


def _events():
    from portal import events

    return events


def open_job(request, machine, *, kind, trigger, command_id=None, retain_until=None, details=None):
    if kind not in Job.Kind.values:
        raise ValidationError({"kind": _("Unknown job kind %(kind)r.") % {"kind": kind}})
    if trigger not in Job.Trigger.values:
        raise ValidationError({"trigger": _("Unknown trigger %(trigger)r.") % {"trigger": trigger}})
    until = None
    if retain_until:
        until = parse_datetime(retain_until) if isinstance(retain_until, str) else retain_until
        if not isinstance(until, datetime) or until.tzinfo is None or until <= timezone.now():
            raise ValidationError(
                {"retain_until": _("Give a future date and time with its time zone.")}
            )
    command = None
    if command_id:
        command = AgentCommand.objects.filter(pk=command_id, machine=machine).first()
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            tenant=machine.tenant,
            vault=machine.vault,
            machine=machine,
            kind=kind,
            trigger=trigger,
            command=command,
            retain_until=until,
            phase="starting",
            details=details or {},
            report_deadline=now + REPORT_GRACE,
        )
        audit.record(
            request,
            f"job.{kind}.start",
            job,
            tenant=machine.tenant,
            actor_label=f"agent:{machine.name}",
            trigger=trigger,
        )
        _events().publish_job(job)
    return job


def report_progress(machine, job_id, values: dict) -> Job:
    """One short transaction per report; the event goes out after commit."""
    job = Job.objects.filter(pk=job_id, machine=machine).first()
    if job is None:
        raise ValidationError({"job": _("No such job for this machine.")})
    if job.state != Job.State.IN_PROGRESS:
        raise ValidationError(
            {"job": _("The job has already finished (%(state)s).") % {"state": job.state}}
        )
    update = {"report_deadline": timezone.now() + REPORT_GRACE}
    for field in PROGRESS_FIELDS:
        value = values.get(field)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError({field: _("Give a whole number of at least 0.")})
            update[field] = value
    if "phase" in values:
        update["phase"] = str(values["phase"])[:30]
    with transaction.atomic():
        Job.objects.filter(pk=job.pk, state=Job.State.IN_PROGRESS).update(**update)
        for field, value in update.items():
            setattr(job, field, value)
        _events().publish_job(job)
    return job


def finish_job(
    request, machine, job_id, *, state, warnings=None, error="", point_id=None, details=None
) -> Job:
    from vaults.models import RecoveryPoint

    if state not in Job.FINAL_STATES:
        raise ValidationError(
            {"state": _("Finish a job as completed, completed_with_warnings or failed.")}
        )
    job = Job.objects.filter(pk=job_id, machine=machine).select_related("machine", "vault").first()
    if job is None:
        raise ValidationError({"job": _("No such job for this machine.")})
    warnings = [str(w)[:500] for w in (warnings or [])]
    if state == Job.State.COMPLETED and warnings:
        state = Job.State.WARNINGS
    now = timezone.now()
    point = RecoveryPoint.objects.filter(pk=point_id, machine=machine).first() if point_id else None
    with transaction.atomic():
        # Compare-and-set: a job finishes once, whoever (agent or watchdog) comes first.
        changed = Job.objects.filter(pk=job.pk, state=Job.State.IN_PROGRESS).update(
            state=state,
            finished_at=now,
            error=str(error)[:4000],
            warnings=warnings[:MAX_WARNINGS_KEPT],
            warning_count=len(warnings),
            recovery_point=point,
            phase="done" if state != "failed" else "failed",
            report_deadline=None,
            details={**job.details, **(details or {})},
        )
        if not changed:
            job.refresh_from_db()
            return job
        job.refresh_from_db()
        if job.kind == Job.Kind.BACKUP:
            Machine.objects.filter(pk=machine.pk).update(
                last_backup_at=now, last_backup_state=state
            )
        if job.command_id:
            AgentCommand.objects.filter(pk=job.command_id).update(
                state="failed" if state == "failed" else "succeeded", finished_at=now
            )
        audit.record(
            request,
            f"job.{job.kind}.finish",
            job,
            tenant=machine.tenant,
            actor_label=f"agent:{machine.name}",
            status="failed" if state == "failed" else "succeeded",
            state=state,
            error=job.error[:200],
        )
        _events().publish_job(job)
        transaction.on_commit(partial(alerts.job_finished, job, now), robust=True)
    return job


def fail_silent_jobs(now=None) -> int:
    """The watchdog: fail in-progress jobs past their report deadline, each exactly once."""
    now = now or timezone.now()
    failed = 0
    for job in Job.objects.filter(
        state=Job.State.IN_PROGRESS, report_deadline__lt=now
    ).select_related("machine", "vault")[:500]:
        message = _(
            "The agent on %(machine)s stopped reporting; the job was failed after %(minutes)s minutes of silence."
        ) % {"machine": job.machine.name, "minutes": int(REPORT_GRACE.total_seconds() // 60)}
        with transaction.atomic():
            if Job.objects.filter(
                pk=job.pk, state=Job.State.IN_PROGRESS, report_deadline__lt=now
            ).update(
                state=Job.State.FAILED,
                finished_at=now,
                error=message,
                phase="failed",
                report_deadline=None,
            ):
                failed += 1
                job.refresh_from_db()
                audit.record(
                    None, f"job.{job.kind}.timeout", job, tenant=job.tenant, status="failed"
                )
                _events().publish_job(job)
                transaction.on_commit(partial(alerts.job_finished, job, now), robust=True)
    return failed
