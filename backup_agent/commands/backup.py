"""``backup-agent backup``: back up now, to the vault or offline to a folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import ExitCode, PortalUnreachable
from ..progress import TerminalProgress, human_bytes
from .context import make_agent
from .output import local_time, note, out
from .parsing import parse_retain_until


def cmd_backup_offline(agent, target: str) -> int:
    document, _fresh = agent.fetch_document(allow_cached=True)
    bar = TerminalProgress()
    try:
        result = agent.backup_offline(Path(target), document=document, progress=bar)
    finally:
        bar.close()
    s = result.stats
    out(
        f"Offline backup written to {target}: {s.get('files', 0):,} files, "
        f"{human_bytes(s.get('bytes_scanned', 0))}, {human_bytes(s.get('bytes_stored', 0))} stored.\n"
        "Ship the disk to your platform operator. Once it is copied into the portal's offline-seed "
        f"folder for machine {agent.cfg.machine_id}, start the import from the server's blade "
        "(Offline seed → Import). The data stays encrypted with your passphrase throughout."
    )
    return ExitCode.OK


def cmd_backup(args) -> int:
    retain_until = parse_retain_until(args.retain_until)
    agent = make_agent(args)
    if args.offline_to:
        try:
            return cmd_backup_offline(agent, args.offline_to)
        finally:
            agent.close()
    try:
        try:
            document, fresh = agent.fetch_document(allow_cached=False)
        except PortalUnreachable as exc:
            raise PortalUnreachable(
                f"{exc.message} A backup needs the portal (for storage URLs and to commit the "
                "recovery point); nothing was backed up. The service (backup-agent run) keeps "
                "scheduled backups and retries them every minute while the portal is away."
            ) from exc
        policy = (document or {}).get("policy") or {}
        if policy:
            from ..jobs import items_from_policy

            out(f"Backing up {', '.join(items_from_policy(policy))} (policy {policy.get('name')})")
        bar = TerminalProgress()
        try:
            outcome = agent.backup(
                trigger="adhoc", document=document, retain_until=retain_until, progress=bar
            )
        finally:
            bar.close()
        s = outcome.stats
        out(
            f"Backup completed: recovery point {outcome.point_id}\n"
            f"  {s.get('files', 0):,} files, {human_bytes(s.get('bytes_scanned', 0))} in the point; "
            f"{human_bytes(s.get('bytes_new', 0))} new, "
            f"{human_bytes(s.get('bytes_stored', 0))} uploaded in {outcome.duration:.1f} s"
        )
        expires = outcome.point.get("retain_until") or outcome.point.get("expires_at")
        if expires:
            out(f"  kept until {local_time(expires)}")
        if outcome.warnings:
            note(f"Completed with {len(outcome.warnings)} warning(s):")
            for w in outcome.warnings[:20]:
                note(f"  {w}")
            if len(outcome.warnings) > 20:
                note(f"  ... and {len(outcome.warnings) - 20} more (see the job in the portal)")
        return outcome.exit_code
    finally:
        agent.close()
