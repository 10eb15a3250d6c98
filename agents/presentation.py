"""How machines and jobs read on pages: online state, versions, progress words."""

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

ONLINE_WITHIN = timedelta(minutes=5)


def is_online(machine, now=None) -> bool:
    now = now or timezone.now()
    return machine.last_seen_at is not None and now - machine.last_seen_at <= ONLINE_WITHIN


def version_tuple(version: str) -> tuple:
    parts = []
    for piece in (version or "0").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def is_outdated(machine, latest: str) -> bool:
    return bool(machine.agent_version) and version_tuple(machine.agent_version) < version_tuple(
        latest
    )


PHASE_LABELS = {
    "starting": _("Starting"),
    "planning": _("Planning"),
    "scanning": _("Scanning"),
    "uploading": _("Uploading"),
    "committing": _("Committing"),
    "restoring": _("Restoring"),
    "done": _("Done"),
    "failed": _("Failed"),
}

RULE_LABELS = {
    "daily": _("Daily"),
    "weekly": _("Weekly"),
    "monthly": _("Monthly"),
    "yearly": _("Yearly"),
    "retain_until": _("Retain until date"),
    "latest": _("Newest point"),
}
