from django.db import transaction

from agents.models import Machine
from policies.schedule import PolicyValidationError, parse_time_zone
from portal import audit


def update_reported_facts(request, machine, facts: dict):
    """Version, OS and time zone as the agent reports them; a new zone moves the schedule."""
    changes = {}
    version = str(facts.get("agent_version", "") or "")[:40]
    if version and version != machine.agent_version:
        changes["agent_version"] = version
    os_name = str(facts.get("os_name", "") or "")[:200]
    if os_name and os_name != machine.os_name:
        changes["os_name"] = os_name
    zone = str(facts.get("time_zone", "") or "")
    if zone and zone != machine.time_zone:
        try:
            parse_time_zone(zone)
        except PolicyValidationError:
            zone = ""
        if zone:
            changes["time_zone"] = zone
    unlocked = facts.get("unlocked_machines")
    if isinstance(unlocked, list):
        names = sorted({str(n)[:253] for n in unlocked if isinstance(n, str)})[:100]
        if names != machine.unlocked_sources:
            changes["unlocked_sources"] = names
    if not changes:
        return
    with transaction.atomic():
        if "time_zone" in changes:
            changes["settings_version"] = machine.settings_version + 1
        Machine.objects.filter(pk=machine.pk).update(**changes)
        audit.record(
            request,
            "machine.report",
            machine,
            actor_label=f"agent:{machine.name}",
            **{k: str(v) for k, v in changes.items()},
        )


def delete_machine(request, machine, *, pin: str = ""):
    """Unregister a server and delete its backup data; with data, the vault's PIN is needed."""
    from portal.access import Action
    from portal.services import require
    from portal.tasks import enqueue
    from vaults.data import account_storage
    from vaults.models import Pack, RecoveryPoint
    from vaults.services import consume_security_pin

    require(request.user, request.tenant, machine, Action.WRITE)
    has_data = (
        RecoveryPoint.objects.filter(machine=machine).exists()
        or Pack.objects.filter(machine=machine).exists()
    )
    with transaction.atomic():
        if has_data:
            consume_security_pin(machine.vault, pin)
        blobs = [
            f"packs/{name}"
            for name in Pack.objects.filter(machine=machine).values_list("name", flat=True)
        ]
        blobs += [
            f"manifests/{machine.pk}/{m}"
            for m in RecoveryPoint.objects.filter(machine=machine).values_list(
                "manifest", flat=True
            )
        ]
        audit.record(request, "machine.delete", machine, with_data=has_data)
        freed, vault_id = machine.storage_bytes, machine.vault_id
        machine.delete()
        account_storage(vault_id, None, -freed)
        if blobs:
            enqueue("vaults.tasks.delete_blobs", str(machine.vault_id), blobs)
