"""Restores and browsing started from the portal: commands carried out by an agent.

The portal never decrypts anything: browsing asks the online agent to list a folder of a
recovery point, and the names it returns are kept only briefly in the cache for the page
that asked (never in the database).
"""

import posixpath

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from agents.models import AgentCommand, Machine
from agents.services.commands import queue_command
from portal import audit
from portal.access import Action
from portal.services import require

BROWSE_RESULT_SECONDS = 300
CONFLICT_RULES = ("overwrite", "skip", "copy")


def _browse_key(command_id) -> str:
    return f"browse-result:{command_id}"


def _clean_path(path: str, field: str) -> str:
    path = (path or "").strip()
    if "\x00" in path or len(path) > 4096:
        raise ValidationError({field: _("Give a path of at most 4096 characters.")})
    return path


def request_browse(request, machine, point, path: str = "") -> AgentCommand:
    require(request.user, request.tenant, machine, Action.OPERATE)
    if point.machine_id != machine.pk:
        raise ValidationError({"point": _("Choose a recovery point of this server.")})
    return queue_command(
        request,
        machine,
        AgentCommand.Kind.BROWSE,
        {"point_id": str(point.pk), "path": _clean_path(path, "path")},
    )


def store_browse_result(command, result: dict):
    entries = result.get("entries") if isinstance(result, dict) else None
    if not isinstance(entries, list):
        return {"error": str(result.get("error", ""))[:500] if isinstance(result, dict) else ""}
    clean = []
    for entry in entries[:5000]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            clean.append(
                {
                    "name": entry["name"][:1024],
                    "type": str(entry.get("type", "file"))[:10],
                    "size": entry.get("size") if isinstance(entry.get("size"), int) else None,
                    "mtime": entry.get("mtime")
                    if isinstance(entry.get("mtime"), int | float)
                    else None,
                }
            )
    cache.set(_browse_key(command.pk), clean, BROWSE_RESULT_SECONDS)
    return {"count": len(clean)}


def browse_result(command) -> list[dict] | None:
    return cache.get(_browse_key(command.pk))


def request_restore(
    request, *, source, point, target, paths, target_dir, on_conflict
) -> AgentCommand:
    """Queue a restore of ``paths`` (all when empty) of ``point`` onto ``target``'s agent."""
    require(request.user, request.tenant, target, Action.OPERATE)
    require(request.user, request.tenant, source, Action.OPERATE)
    if point.machine_id != source.pk:
        raise ValidationError({"point": _("Choose a recovery point of the source server.")})
    if target.vault_id != source.vault_id:
        raise ValidationError({"target": _("Restore to a server registered to the same vault.")})
    if target.pk != source.pk and source.name not in (target.unlocked_sources or []):
        raise ValidationError(
            {
                "target": _(
                    "%(target)s cannot read %(source)s's backups yet. On %(target)s run: backup-agent unlock --machine %(source)s"
                )
                % {"target": target.name, "source": source.name}
            }
        )
    if on_conflict not in CONFLICT_RULES:
        raise ValidationError({"on_conflict": _("Choose overwrite, skip or copy.")})
    target_dir = _clean_path(target_dir, "target")
    if (
        not target_dir
        or not posixpath.isabs(target_dir.replace("\\", "/"))
        and ":" not in target_dir[:3]
    ):
        raise ValidationError(
            {"target": _("Give an absolute folder on the target server, such as /srv/restore.")}
        )
    paths = [_clean_path(p, "paths") for p in (paths or []) if p and p.strip()][:1000]
    with transaction.atomic():
        command = queue_command(
            request,
            target,
            AgentCommand.Kind.RESTORE,
            {
                "point_id": str(point.pk),
                "source_machine": source.name,
                "paths": paths,
                "target": target_dir,
                "on_conflict": on_conflict,
            },
        )
        audit.record(
            request,
            "restore.request",
            target,
            source=source.name,
            point=str(point.pk),
            items=len(paths) or "all",
            target_dir=target_dir,
            on_conflict=on_conflict,
        )
    return command


def restore_targets(source):
    """The servers a restore of ``source`` can run on: itself, and those that unlocked it."""
    machines = Machine.objects.filter(vault_id=source.vault_id).order_by("name")
    return [m for m in machines if m.pk == source.pk or source.name in (m.unlocked_sources or [])]
