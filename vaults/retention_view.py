"""Retention verdicts of a machine's recovery points, for display (the pure engine decides)."""

from django.utils import timezone

from policies.documents import effective_time_zone, retention_from_doc
from policies.retention import Point, evaluate
from policies.schedule import PolicyValidationError


def point_verdicts(machine, points, now=None) -> dict:
    """{point id: Verdict} under the machine's policy; ad-hoc points by their own date."""
    policy = machine.policy
    if policy is None or not points:
        return {}
    try:
        rules = retention_from_doc(policy.retention)
    except PolicyValidationError:
        return {}
    items = [
        Point(
            id=str(p.pk),
            time=p.taken_at,
            retain_until=p.retain_until if p.kind == "adhoc" else None,
            kind=p.kind,
        )
        for p in points
    ]
    return evaluate(items, rules, effective_time_zone(policy, machine), now or timezone.now())
