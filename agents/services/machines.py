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
