"""Commands from the portal to an agent, delivered by the (long) poll."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from agents.models import AgentCommand

COMMAND_LIFETIME = timedelta(hours=1)


def machine_group(machine_id) -> str:
    return f"agent.{machine_id}"


def _wake(machine_id):
    """Tell a long-polling agent (in any web process) that a command is waiting."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(machine_group(machine_id), {"type": "agent.wake"})


def queue_command(request, machine, kind: str, payload: dict | None = None) -> AgentCommand:
    if kind not in AgentCommand.Kind.values:
        raise ValidationError({"kind": _("Unknown command %(kind)r.") % {"kind": kind}})
    with transaction.atomic():
        command = AgentCommand.objects.create(
            machine=machine,
            kind=kind,
            payload=payload or {},
            created_by=request.user
            if request is not None and request.user.is_authenticated
            else None,
            expires_at=timezone.now() + COMMAND_LIFETIME,
        )
        transaction.on_commit(lambda: _wake(machine.pk))
    return command


def pending_commands(machine):
    return list(
        AgentCommand.objects.filter(
            machine=machine, state=AgentCommand.State.PENDING, expires_at__gt=timezone.now()
        ).values("id", "kind", "payload", "created_at")
    )


def acknowledge(machine, command_id) -> AgentCommand:
    now = timezone.now()
    updated = AgentCommand.objects.filter(
        pk=command_id, machine=machine, state=AgentCommand.State.PENDING
    ).update(state=AgentCommand.State.ACKNOWLEDGED, acknowledged_at=now)
    command = AgentCommand.objects.filter(pk=command_id, machine=machine).first()
    if command is None:
        raise ValidationError({"command": _("No such command for this machine.")})
    if not updated and command.state != AgentCommand.State.ACKNOWLEDGED:
        raise ValidationError(
            {"command": _("The command is %(state)s.") % {"state": command.state}}
        )
    return command


def report_result(machine, command_id, *, ok: bool, result: dict) -> AgentCommand:
    command = AgentCommand.objects.filter(pk=command_id, machine=machine).first()
    if command is None:
        raise ValidationError({"command": _("No such command for this machine.")})
    command.state = AgentCommand.State.SUCCEEDED if ok else AgentCommand.State.FAILED
    if command.kind == AgentCommand.Kind.BROWSE:
        from agents.services.restore import store_browse_result

        result = store_browse_result(command, result)  # names are not kept in the database
    command.result = result if isinstance(result, dict) else {"value": str(result)[:500]}
    command.finished_at = timezone.now()
    command.save(update_fields=["state", "result", "finished_at"])
    return command
