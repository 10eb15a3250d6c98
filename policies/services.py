"""Business rules for backup policies and their assignment to machines.

Views, API views and the agent API call these. Each checks the actor's rights, validates
with the pure engines (policies/schedule.py, policies/retention.py), writes and audits in one
transaction, and refuses bad input with a ValidationError whose messages say what to change.
Machine throttling is in policies/throttling.py.
"""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from agents.models import Machine
from policies.documents import (
    retention_from_doc,
    retention_to_doc,
    schedule_from_doc,
    schedule_to_doc,
)
from policies.models import BackupPolicy
from policies.retention import RULE_NAMES, describe_retention, is_reduction, retention_errors
from policies.schedule import PolicyValidationError, describe_schedule, next_runs, parse_time_zone
from portal import audit
from portal.access import Action
from portal.services import require
from vaults.models import Immutability

NAME_MAX = 80
MAX_ITEMS = 100
MAX_EXCLUSIONS = 100
MAX_PATH = 1024
SCHEDULE_FIELDS = ("frequency", "times", "weekdays", "every_weeks", "anchor")
POLICY_FIELDS = (
    "name",
    "items",
    "exclusions",
    "system_state",
    "schedule",
    "retention",
    "time_zone",
    "initial_backup",
)
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\[^\\]+\\)")


# --- validation ----------------------------------------------------------------------------------


class _Errors:
    """Collects messages by field so one answer lists every problem."""

    def __init__(self):
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str):
        self.by_field.setdefault(field, []).append(str(message))

    def merge_engine(self, errors: dict[str, list[str]]):
        """Engine field names become paths in the policy document: schedule.times, retention.weekly."""
        for field, messages in errors.items():
            if field in SCHEDULE_FIELDS:
                field = f"schedule.{field}"
            elif field in RULE_NAMES:
                field = f"retention.{field}"
            for message in messages:
                self.add(field, message)

    def raise_if_any(self):
        if self.by_field:
            raise ValidationError(self.by_field)


def is_absolute_path(value: str) -> bool:
    return bool(_ABSOLUTE.match(value))


def _clean_name(name, errors: _Errors, vault, exclude_pk=None) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors.add("name", _("Give the policy a name."))
    elif len(name) > NAME_MAX:
        errors.add(
            "name",
            _("Policy names are at most %(max)s characters; remove %(extra)s.")
            % {"max": NAME_MAX, "extra": len(name) - NAME_MAX},
        )
    elif (
        BackupPolicy.objects.filter(vault=vault, name__iexact=name).exclude(pk=exclude_pk).exists()
    ):
        errors.add(
            "name",
            _("This vault already has a policy named %(name)s; choose another name.")
            % {"name": name},
        )
    return name


def _clean_items(items, errors: _Errors) -> list[str]:
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        errors.add("items", _('Give the items to back up as a list of paths, e.g. ["/home"].'))
        return []
    cleaned = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if len(item) > MAX_PATH:
            errors.add("items", _("Paths are at most %(max)s characters.") % {"max": MAX_PATH})
        elif not is_absolute_path(item):
            errors.add(
                "items",
                _("Use full paths such as /home or C:\\Data; %(path)s is not one.")
                % {"path": item},
            )
        elif item in cleaned:
            errors.add("items", _("%(path)s is listed twice; remove one.") % {"path": item})
        else:
            cleaned.append(item)
    if len(cleaned) > MAX_ITEMS:
        errors.add(
            "items",
            _("A policy backs up at most %(max)s folders or files; remove %(extra)s.")
            % {"max": MAX_ITEMS, "extra": len(cleaned) - MAX_ITEMS},
        )
    return cleaned


def _clean_exclusions(exclusions, errors: _Errors) -> list[dict]:
    """Exclusions in the agent's form: {"folder", "pattern", "include_subfolders"}."""
    if not isinstance(exclusions, list | tuple):
        errors.add("exclusions", _("Give the exclusions as a list."))
        return []
    cleaned = []
    for rule in exclusions:
        if not isinstance(rule, dict):
            errors.add(
                "exclusions",
                _('Each exclusion is an object such as {"pattern": "*.tmp"}.'),
            )
            continue
        folder = rule.get("folder") or None
        pattern = rule.get("pattern") or None
        subfolders = rule.get("include_subfolders", True)
        if not all(isinstance(v, str | type(None)) for v in (folder, pattern)) or not isinstance(
            subfolders, bool
        ):
            errors.add(
                "exclusions",
                _(
                    "An exclusion's folder and pattern are text and include_subfolders is true or false."
                ),
            )
            continue
        folder = folder.strip() if folder else None
        pattern = pattern.strip() if pattern else None
        if not folder and not pattern:
            errors.add(
                "exclusions",
                _("An exclusion needs a folder, a file pattern such as *.tmp, or both."),
            )
            continue
        if folder and not is_absolute_path(folder):
            errors.add(
                "exclusions",
                _("Exclude folders by their full path, such as /home/temp; %(path)s is not one.")
                % {"path": folder},
            )
            continue
        if pattern and ("/" in pattern or "\\" in pattern):
            errors.add(
                "exclusions",
                _(
                    "A file pattern matches names, such as *.tmp; put the folder of %(pattern)s in the folder field."
                )
                % {"pattern": pattern},
            )
            continue
        if len(folder or "") > MAX_PATH or len(pattern or "") > 255:
            errors.add("exclusions", _("That exclusion is too long; shorten it."))
            continue
        entry = {"folder": folder, "pattern": pattern, "include_subfolders": subfolders}
        if entry not in cleaned:
            cleaned.append(entry)
    if len(cleaned) > MAX_EXCLUSIONS:
        errors.add(
            "exclusions",
            _("A policy has at most %(max)s exclusions; remove %(extra)s.")
            % {"max": MAX_EXCLUSIONS, "extra": len(cleaned) - MAX_EXCLUSIONS},
        )
    return cleaned


def _clean_schedule_and_retention(schedule_doc, retention_doc, errors: _Errors, vault):
    schedule = retention = None
    try:
        schedule = schedule_from_doc(schedule_doc)
    except PolicyValidationError as exc:
        errors.merge_engine(exc.errors)
    try:
        retention = retention_from_doc(retention_doc)
    except PolicyValidationError as exc:
        errors.merge_engine(exc.errors)
    if schedule is None or retention is None:
        return None, None, None, None
    problems = retention_errors(retention, schedule, security_minimums=security_minimums(vault))
    if problems:
        errors.merge_engine(problems)
        return None, None, None, None
    return schedule_to_doc(schedule), retention_to_doc(retention), schedule, retention


def _clean_time_zone(value, errors: _Errors) -> str:
    if value in (None, ""):
        return ""
    try:
        parse_time_zone(value.strip() if isinstance(value, str) else value)
    except PolicyValidationError as exc:
        errors.merge_engine(exc.errors)
        return ""
    return value.strip()


def _clean_initial_backup(value, errors: _Errors) -> str:
    value = value or BackupPolicy.InitialBackup.NETWORK
    if value not in BackupPolicy.InitialBackup.values:
        errors.add(
            "initial_backup",
            _("Choose %(network)s or %(offline)s for the initial backup.")
            % {"network": "network", "offline": "offline"},
        )
    return value


def security_minimums(vault) -> bool:
    """Security features on: retention keeps at least 7 days, 4 weeks, 3 months, 1 year."""
    return bool(vault.soft_delete_enabled)


def immutable(vault) -> bool:
    return vault.immutability in (Immutability.ENABLED, Immutability.LOCKED)


def clean_policy(vault, fields: dict, *, instance=None) -> dict:
    """Every field of a policy checked with the engines; raises one ValidationError for all."""
    errors = _Errors()
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        errors.add(sorted(unknown)[0], _("Unknown setting; remove it."))
    values = {}
    exclude = instance.pk if instance else None
    values["name"] = _clean_name(fields.get("name"), errors, vault, exclude)
    values["items"] = _clean_items(fields.get("items", []), errors)
    values["exclusions"] = _clean_exclusions(fields.get("exclusions", []), errors)
    system_state = fields.get("system_state", False)
    if not isinstance(system_state, bool):
        errors.add("system_state", _("System State is true or false."))
    values["system_state"] = bool(system_state)
    if not values["items"] and not values["system_state"] and "items" not in errors.by_field:
        errors.add(
            "items", _("Add at least one folder or file to back up, or select System State.")
        )
    schedule, retention, _schedule, new_retention = _clean_schedule_and_retention(
        fields.get("schedule"), fields.get("retention"), errors, vault
    )
    values["schedule"], values["retention"] = schedule, retention
    values["time_zone"] = _clean_time_zone(fields.get("time_zone", ""), errors)
    values["initial_backup"] = _clean_initial_backup(fields.get("initial_backup"), errors)
    if instance is not None and new_retention is not None and immutable(vault):
        reasons = is_reduction(retention_from_doc(instance.retention), new_retention)
        if reasons:
            errors.add(
                "retention",
                _(
                    "Immutability is on for this vault, so retention cannot be reduced. Keep at least the current retention: %(reasons)s"
                )
                % {"reasons": " ".join(reasons)},
            )
    errors.raise_if_any()
    return values


# --- policies --------------------------------------------------------------------------------------


def _integrity_error(name):
    return ValidationError(
        {
            "name": _("This vault already has a policy named %(name)s; choose another name.")
            % {"name": name}
        }
    )


def create_policy(request, vault, **fields) -> BackupPolicy:
    require(request.user, request.tenant, vault, Action.WRITE)
    values = clean_policy(vault, fields)
    policy = BackupPolicy(tenant=vault.tenant, vault=vault, created_by=request.user, **values)
    try:
        with transaction.atomic():
            policy.save()
            audit.record(
                request,
                "policy.create",
                policy,
                schedule=policy.schedule,
                retention=policy.retention,
            )
    except IntegrityError as exc:
        raise _integrity_error(values["name"]) from exc
    return policy


def update_policy(request, policy, **fields) -> BackupPolicy:
    """Change some or all fields; the version grows so agents fetch the new policy."""
    vault = policy.vault
    require(request.user, request.tenant, vault, Action.WRITE)
    current = {name: getattr(policy, name) for name in POLICY_FIELDS}
    values = clean_policy(vault, {**current, **fields}, instance=policy)
    changed = sorted(name for name in POLICY_FIELDS if values[name] != current[name])
    if not changed:
        return policy
    try:
        with transaction.atomic():
            locked = BackupPolicy.objects.select_for_update().get(pk=policy.pk)
            for name in changed:
                setattr(policy, name, values[name])
            policy.version = locked.version + 1
            policy.save(update_fields=[*changed, "version", "updated_at"])
            audit.record(
                request,
                "policy.update",
                policy,
                changed=changed,
                version=policy.version,
                **{name: values[name] for name in changed if name in ("schedule", "retention")},
            )
    except IntegrityError as exc:
        raise _integrity_error(values["name"]) from exc
    return policy


def machines_using(policy) -> list[str]:
    return list(policy.machines.order_by("name").values_list("name", flat=True))


def delete_policy(request, policy):
    require(request.user, request.tenant, policy.vault, Action.WRITE)
    with transaction.atomic():
        names = list(
            Machine.objects.select_for_update()
            .filter(policy=policy)
            .order_by("name")
            .values_list("name", flat=True)
        )
        if names:
            raise ValidationError(
                _(
                    "Policy %(policy)s is used by: %(machines)s. Assign those machines another policy first."
                )
                % {"policy": policy.name, "machines": ", ".join(names)}
            )
        audit.record(request, "policy.delete", policy)
        policy.delete()


# --- machines --------------------------------------------------------------------------------------


def _bump_settings(machine, **changes):
    """Save ``changes`` and grow settings_version so the agent's next poll gets new settings."""
    Machine.objects.filter(pk=machine.pk).update(
        settings_version=F("settings_version") + 1, **changes
    )
    machine.refresh_from_db(fields=["settings_version"])


def assign_policy(request, machine, policy):
    """Give ``machine`` the ``policy`` of its own vault, or take its policy away (None)."""
    require(request.user, request.tenant, machine, Action.OPERATE)
    if policy is not None and policy.vault_id != machine.vault_id:
        raise ValidationError(
            {
                "policy": _(
                    "Policy %(policy)s belongs to vault %(other)s; %(machine)s is registered with vault %(vault)s. Choose a policy of %(vault)s."
                )
                % {
                    "policy": policy.name,
                    "other": policy.vault.name,
                    "machine": machine.name,
                    "vault": machine.vault.name,
                }
            }
        )
    old = machine.policy if machine.policy_id else None
    if (old.pk if old else None) == (policy.pk if policy else None):
        return machine
    with transaction.atomic():
        machine.policy = policy
        machine.next_backup_at = None  # the missed-backup watchdog starts from the new schedule
        _bump_settings(machine, policy=policy, next_backup_at=None)
        audit.record(
            request,
            "machine.policy.assign" if policy else "machine.policy.remove",
            machine,
            policy=policy.name if policy else None,
            previous=old.name if old else None,
        )
    return machine


# --- descriptions ----------------------------------------------------------------------------------


def describe_policy(schedule_doc: dict, retention_doc: dict, time_zone: str = "") -> dict:
    """Plain-words summaries of a stored (valid) schedule and retention."""
    schedule = schedule_from_doc(schedule_doc)
    return {
        "schedule": describe_schedule(schedule, time_zone or None),
        "retention": describe_retention(retention_from_doc(retention_doc)),
    }


def preview_runs(schedule_doc: dict, time_zone: str, after, count: int = 10) -> list:
    """The next ``count`` run instants of a valid schedule, as aware datetimes in ``time_zone``."""
    zone = parse_time_zone(time_zone)
    return [
        run.astimezone(zone)
        for run in next_runs(schedule_from_doc(schedule_doc), zone, after, count)
    ]
