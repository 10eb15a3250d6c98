"""JSON forms of schedules and retention policies, and the per-machine policy document.

The portal stores the JSON; the pure engines take dataclasses. The machine document is
what an agent receives on its poll; its ETag changes only when something the agent acts
on changes (settings, policy version, the next run, the newest agent release). Messages are
translated when they are made, in the language active at the call.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time

from django.utils.translation import gettext as _

from policies.retention import DailyRule, MonthlyRule, RetentionPolicy, WeeklyRule, YearlyRule
from policies.schedule import PolicyValidationError, Schedule, next_runs

DOCUMENT_VERSION = 1
RUNS_IN_DOCUMENT = 64  # enough to keep the schedule for weeks while the portal is unreachable


def _time(value, field: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError) as exc:
        raise PolicyValidationError(
            {field: [_("%(value)s is not a time; use HH:MM, e.g. 09:30.") % {"value": repr(value)}]}
        ) from exc


def _ints(values, field: str) -> tuple[int, ...]:
    if not isinstance(values, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise PolicyValidationError({field: [_("Give a list of whole numbers.")]})
    return tuple(values)


def schedule_from_doc(doc: dict) -> Schedule:
    if not isinstance(doc, dict):
        raise PolicyValidationError({"schedule": [_("The schedule must be an object.")]})
    anchor = doc.get("anchor")
    try:
        anchor = date.fromisoformat(anchor) if anchor else None
    except (TypeError, ValueError) as exc:
        raise PolicyValidationError(
            {"schedule.anchor": [_("Use a date such as 2026-01-04.")]}
        ) from exc
    times = doc.get("times", [])
    if not isinstance(times, list):
        message = _('Give a list of times such as ["09:30"].')
        raise PolicyValidationError({"schedule.times": [message]})
    return Schedule(
        frequency=doc.get("frequency", ""),
        times=tuple(_time(t, "schedule.times") for t in times),
        weekdays=_ints(doc.get("weekdays", []), "schedule.weekdays"),
        every_weeks=doc.get("every_weeks", 1),
        anchor=anchor,
    )


def schedule_to_doc(schedule: Schedule) -> dict:
    doc = {"frequency": schedule.frequency, "times": [t.strftime("%H:%M") for t in schedule.times]}
    if schedule.frequency == "weekly":
        doc.update(weekdays=list(schedule.weekdays), every_weeks=schedule.every_weeks)
        if schedule.anchor:
            doc["anchor"] = schedule.anchor.isoformat()
    return doc


def _rule_kwargs(doc: dict, field: str, names: tuple[str, ...]) -> dict:
    if not isinstance(doc, dict):
        raise PolicyValidationError({field: [_("Each retention rule must be an object.")]})
    unknown = set(doc) - set(names)
    if unknown:
        message = _("Unknown setting %(name)s.") % {"name": repr(sorted(unknown)[0])}
        raise PolicyValidationError({field: [message]})
    kwargs = {}
    for name in names:
        if name not in doc:
            continue
        value = doc[name]
        kwargs[name] = tuple(value) if isinstance(value, list) else value
    return kwargs


def retention_from_doc(doc: dict) -> RetentionPolicy:
    if not isinstance(doc, dict):
        raise PolicyValidationError({"retention": [_("The retention policy must be an object.")]})
    forms = {
        "daily": (DailyRule, ("days",)),
        "weekly": (WeeklyRule, ("weekdays", "weeks")),
        "monthly": (MonthlyRule, ("months", "days_of_month", "weeks_of_month", "weekdays")),
        "yearly": (YearlyRule, ("years", "months", "days_of_month", "weeks_of_month", "weekdays")),
    }
    rules = {}
    for name, (rule_class, fields) in forms.items():
        if doc.get(name) is None:
            continue
        kwargs = _rule_kwargs(doc[name], f"retention.{name}", fields)
        try:
            rules[name] = rule_class(**kwargs)
        except TypeError as exc:
            # Translators: the rule is its key in the API document (daily, weekly, monthly or
            # yearly); the detail is Python's description of what is missing.
            message = _("Complete the %(rule)s rule: %(detail)s.") % {"rule": name, "detail": exc}
            raise PolicyValidationError({name: [message]}) from exc
    return RetentionPolicy(**rules)


def retention_to_doc(policy: RetentionPolicy) -> dict:
    doc = {}
    for name in ("daily", "weekly", "monthly", "yearly"):
        rule = getattr(policy, name)
        if rule is None:
            continue
        doc[name] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in vars(rule).items()
            if value not in ((), None)
        }
    return doc


def effective_time_zone(policy, machine) -> str:
    return (
        policy.time_zone if policy is not None and policy.time_zone else ""
    ) or machine.time_zone


def upcoming_runs(
    policy, machine, after: datetime, count: int = RUNS_IN_DOCUMENT
) -> list[datetime]:
    if policy is None:
        return []
    return next_runs(
        schedule_from_doc(policy.schedule), effective_time_zone(policy, machine), after, count
    )


def throttling_doc(machine) -> dict:
    return {
        "enabled": machine.throttle_enabled,
        "work_days": machine.work_days,
        "work_start": machine.work_start.strftime("%H:%M") if machine.work_start else None,
        "work_end": machine.work_end.strftime("%H:%M") if machine.work_end else None,
        "work_hours_kbps": machine.work_hours_kbps,
        "off_hours_kbps": machine.off_hours_kbps,
    }


def policy_doc(policy) -> dict | None:
    if policy is None:
        return None
    return {
        "id": str(policy.id),
        "name": policy.name,
        "version": policy.version,
        "items": policy.items,
        "exclusions": policy.exclusions,
        "system_state": policy.system_state,
        "schedule": policy.schedule,
        "retention": policy.retention,
        "initial_backup": policy.initial_backup,
    }


def config_etag(machine, policy, latest_release: str, now: datetime) -> str:
    """Cheap to compute on every poll: no query beyond the machine and its policy."""
    runs = upcoming_runs(policy, machine, now, 1)
    parts = [
        DOCUMENT_VERSION,
        str(machine.pk),
        machine.settings_version,
        machine.time_zone,
        str(policy.pk) if policy else "",
        policy.version if policy else 0,
        runs[0].isoformat() if runs else "",
        latest_release,
    ]
    return '"' + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32] + '"'


def machine_document(
    machine, policy, latest_release: str, now: datetime, poll_interval: int
) -> dict:
    return {
        "document_version": DOCUMENT_VERSION,
        "machine": {"id": str(machine.pk), "name": machine.name, "vault_id": str(machine.vault_id)},
        "time_zone": effective_time_zone(policy, machine),
        "policy": policy_doc(policy),
        "throttling": throttling_doc(machine),
        "next_runs": [run.isoformat() for run in upcoming_runs(policy, machine, now)],
        "poll_interval": poll_interval,
        "latest_agent_version": latest_release,
    }
