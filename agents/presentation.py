"""How machines and jobs read on pages: online state, versions, progress words."""

from datetime import timedelta

from django.utils import timezone

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


def status_icon(state: str) -> str:
    return {
        "completed": "ok",
        "completed_with_warnings": "warn",
        "failed": "fail",
        "in_progress": "progress",
    }.get(state, "info")
