"""Network throttling of a machine: its agent's bandwidth in and outside work hours.

Views, API views and the agent API call ``set_throttling``; like the policy rules in
policies/services.py it checks the actor's rights, validates, writes and audits in one
transaction, and refuses bad input with a ValidationError that says what to change.
"""

import re
from datetime import time

from django.db import transaction
from django.utils.translation import gettext as _

from policies.services import _bump_settings, _Errors
from portal import audit
from portal.access import Action
from portal.services import require

MIN_KBPS = 512  # 512 Kbps
# Network rates are decimal, as the agent counts them: 1 Mbps = 1,000 Kbps.
KBPS_PER_MBPS = 1000
MAX_KBPS = 1023 * KBPS_PER_MBPS  # 1,023 Mbps


def format_kbps(kbps: int) -> str:
    if kbps >= KBPS_PER_MBPS and kbps % KBPS_PER_MBPS == 0:
        return _("%(value)s Mbps") % {"value": f"{kbps // KBPS_PER_MBPS:,}"}
    return _("%(value)s Kbps") % {"value": f"{kbps:,}"}


def _parse_time(value, field: str, label: str, errors: _Errors):
    if value is None or isinstance(value, time):
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    errors.add(
        field,
        _(
            "%(value)s is not a time; give the %(what)s as HH:MM between 00:00 and 23:59, e.g. 09:00."
        )
        % {"value": repr(value), "what": label},
    )
    return None


def _check_kbps(value, field: str, label: str, errors: _Errors):
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add(field, _("Give the %(what)s as a whole number of Kbps.") % {"what": label})
    elif value < MIN_KBPS:
        errors.add(
            field,
            _(
                "The %(what)s is %(value)s; raise it to at least 512 Kbps (the range is 512 Kbps to 1,023 Mbps)."
            )
            % {"what": label, "value": format_kbps(value)},
        )
    elif value > MAX_KBPS:
        errors.add(
            field,
            _(
                "The %(what)s is %(value)s; lower it to at most 1,023 Mbps (the range is 512 Kbps to 1,023 Mbps)."
            )
            % {"what": label, "value": format_kbps(value)},
        )


def clean_throttling(
    machine, *, enabled, work_days, work_start, work_end, work_hours_kbps, off_hours_kbps
) -> dict:
    """Check throttling settings; None means "keep the machine's current value"."""
    errors = _Errors()
    if not isinstance(enabled, bool):
        errors.add("enabled", _("Throttling is on (true) or off (false)."))
    if work_days is not None:
        if not isinstance(work_days, list | tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in work_days
        ):
            errors.add("work_days", _("Give work days as numbers, 0 (Monday) to 6 (Sunday)."))
            work_days = None
        else:
            wrong = [d for d in work_days if not 0 <= d <= 6]
            if wrong:
                errors.add(
                    "work_days",
                    _("Days are numbered 0 (Monday) to 6 (Sunday); remove %(days)s.")
                    % {"days": ", ".join(str(d) for d in wrong)},
                )
            work_days = sorted(set(work_days))
    start = _parse_time(work_start, "work_start", _("start of work hours"), errors)
    end = _parse_time(work_end, "work_end", _("end of work hours"), errors)
    _check_kbps(work_hours_kbps, "work_hours_kbps", _("bandwidth during work hours"), errors)
    _check_kbps(off_hours_kbps, "off_hours_kbps", _("bandwidth outside work hours"), errors)
    errors.raise_if_any()
    values = {
        "throttle_enabled": enabled,
        "work_days": machine.work_days if work_days is None else work_days,
        "work_start": machine.work_start if start is None else start,
        "work_end": machine.work_end if end is None else end,
        "work_hours_kbps": machine.work_hours_kbps if work_hours_kbps is None else work_hours_kbps,
        "off_hours_kbps": machine.off_hours_kbps if off_hours_kbps is None else off_hours_kbps,
    }
    if enabled:
        if not values["work_days"]:
            errors.add("work_days", _("Choose at least one work day."))
        if values["work_start"] is None:
            errors.add("work_start", _("Choose when work hours start, e.g. 09:00."))
        if values["work_end"] is None:
            errors.add("work_end", _("Choose when work hours end, e.g. 17:00."))
        for field, label in (
            ("work_hours_kbps", _("bandwidth during work hours")),
            ("off_hours_kbps", _("bandwidth outside work hours")),
        ):
            if values[field] is None:
                errors.add(
                    field,
                    _("Choose the %(what)s, from 512 Kbps to 1,023 Mbps.") % {"what": label},
                )
    if (
        values["work_start"] is not None
        and values["work_end"] is not None
        and values["work_start"] >= values["work_end"]
    ):
        errors.add(
            "work_end",
            _("Work hours must end after they start; choose an end time later than %(start)s.")
            % {"start": values["work_start"].strftime("%H:%M")},
        )
    errors.raise_if_any()
    return values


class _AgentRequest:
    """An agent's request as the audit log sees it: no user, the agent's address."""

    def __init__(self, request):
        self.user = None
        self.META = getattr(request, "META", {}) if request is not None else {}


def set_throttling(
    request,
    machine,
    *,
    enabled,
    work_days=None,
    work_start=None,
    work_end=None,
    work_hours_kbps=None,
    off_hours_kbps=None,
    by_agent=False,
):
    """The agent's Change Properties → Throttling, from the portal or from the agent itself."""
    if not by_agent:
        require(request.user, request.tenant, machine, Action.OPERATE)
    values = clean_throttling(
        machine,
        enabled=enabled,
        work_days=work_days,
        work_start=work_start,
        work_end=work_end,
        work_hours_kbps=work_hours_kbps,
        off_hours_kbps=off_hours_kbps,
    )
    changed = [name for name, value in values.items() if getattr(machine, name) != value]
    if not changed:
        return machine
    details = {
        **{name: values[name] for name in ("throttle_enabled", "work_days")},
        **{
            name: values[name].strftime("%H:%M") if values[name] else None
            for name in ("work_start", "work_end")
        },
        **{name: values[name] for name in ("work_hours_kbps", "off_hours_kbps")},
    }
    with transaction.atomic():
        for name, value in values.items():
            setattr(machine, name, value)
        _bump_settings(machine, **values)
        if by_agent:
            audit.record(
                _AgentRequest(request),
                "machine.throttling.update",
                machine,
                actor_label=f"agent:{machine.name}",
                **details,
            )
        else:
            audit.record(request, "machine.throttling.update", machine, **details)
    return machine
