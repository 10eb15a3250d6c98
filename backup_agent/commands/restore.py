"""``backup-agent recovery-points``, ``ls``, ``restore`` and ``unlock``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..crypto import WrongPassphrase, unwrap_keys
from ..errors import AgentError, ExitCode, PassphraseError, PortalNotFound, UsageError
from ..progress import TerminalProgress, human_bytes
from .context import config_dir, make_agent
from .output import local_time, note, out, table
from .passphrase import ask_passphrase

POINT_TYPES = {"scheduled": "scheduled", "adhoc": "ad hoc", "offline": "offline"}


def cmd_points(args) -> int:
    agent = make_agent(args, retries=2)
    try:
        points = agent.list_points(agent.repository(args.machine))
    finally:
        agent.close()
    if args.json:
        out(json.dumps(points, indent=2, default=str))
        return ExitCode.OK
    if not points:
        out(f"{args.machine or agent.cfg.machine_name} has no recovery points yet.")
        return ExitCode.OK
    rows = []
    for p in reversed(points):
        expiry = p.get("retain_until") or p.get("expires_at")
        rows.append(
            [
                str(p["id"])[:8],
                local_time(p.get("taken_at") or p.get("created_at")),
                POINT_TYPES.get(p.get("point_type"), p.get("point_type") or "")
                + (" (system state)" if p.get("kind") == "system_state" else ""),
                f"{p.get('files', 0):,}",
                human_bytes(p.get("bytes_scanned") or 0),
                local_time(expiry) if expiry else "-",
            ]
        )
    out(table(rows, ["ID", "TIME", "TYPE", "FILES", "SIZE", "EXPIRES"]))
    return ExitCode.OK


def cmd_ls(args) -> int:
    agent = make_agent(args, retries=2)
    try:
        listing = agent.browse(args.point, args.path or "", args.machine)
    finally:
        agent.close()
    if args.json:
        out(json.dumps(listing, indent=2))
        return ExitCode.OK
    marks = {"dir": "d", "file": "-", "symlink": "l"}
    for e in listing["entries"]:
        name = e["name"] + ("/" if e["type"] == "dir" else "")
        if e["type"] == "symlink":
            name += f" -> {e.get('target', '')}"
        out(f"{marks.get(e['type'], '?')} {e['size']:>14,}  {local_time(e['mtime'])}  {name}")
    if not listing["entries"]:
        note(f"(/{listing['path']} is empty)")
    return ExitCode.OK


def cmd_restore(args) -> int:
    agent = make_agent(args)
    try:
        document = None
        with contextlib.suppress(AgentError):
            document, _ = agent.fetch_document()
        bar = TerminalProgress()
        try:
            outcome = agent.restore(
                point=args.point,
                target=args.target,
                paths=args.path,
                on_conflict=args.on_conflict,
                machine=args.from_machine,
                trigger="adhoc",
                document=document,
                progress=bar,
            )
        finally:
            bar.close()
    finally:
        agent.close()
    out(
        f"Restored {outcome.files:,} files ({human_bytes(outcome.bytes)}), {outcome.dirs:,} "
        f"folders and {outcome.symlinks:,} symlinks into {Path(args.target).absolute()} "
        f"in {outcome.duration:.1f} s"
    )
    if outcome.skipped:
        out(f"  {len(outcome.skipped):,} existing item(s) left alone (--on-conflict skip)")
    if outcome.renamed:
        out(f"  {len(outcome.renamed):,} item(s) restored beside existing ones as copies")
    for w in outcome.warnings[:20]:
        note(f"warning: {w}")
    if outcome.failures:
        note(f"{len(outcome.failures)} item(s) could not be restored:")
        for path, reason in outcome.failures[:50]:
            note(f"  /{path}: {reason}")
    return outcome.exit_code


def cmd_unlock(args) -> int:
    import base64

    cdir = config_dir(args)
    cfg = cdir.load()
    agent = make_agent(args, retries=2)
    try:
        own = agent.is_own(args.machine)
        who = cfg.machine_name if own else args.machine
        data = agent.portal.get("keys/", params=None if own else {"machine": args.machine})
    except PortalNotFound as exc:
        raise UsageError(f"No machine named {args.machine} is registered in this vault.") from exc
    finally:
        agent.close()
    if not data.get("key_blob"):
        raise PassphraseError(f"{who} has no keys stored in the vault (it never backed up).")
    wrapped = base64.b64decode(data["key_blob"])
    passphrase = ask_passphrase(args, f"Passphrase of {who}: ")
    try:
        bundle = unwrap_keys(wrapped, passphrase)
    except WrongPassphrase:
        raise PassphraseError(f"This passphrase does not unlock the keys of {who}.") from None
    except ValueError as exc:
        raise PassphraseError(str(exc)) from exc
    if own:
        cdir.save_keys(cfg.machine_name, wrapped, bundle, uploaded=True)
        out(f"The keys of {who} are unlocked on this machine.")
    else:
        path = cdir.save_unlocked(data.get("machine") or args.machine, bundle)
        # tell the portal (names only) so it offers this machine as a restore target
        agent = make_agent(args, retries=2)
        try:
            agent.portal.patch("config/", {"unlocked_machines": cdir.unlocked_names()})
        except AgentError as exc:
            note(f"warning: the portal was not told about it yet ({exc.message}).")
        finally:
            agent.close()
        out(
            f"The keys of {who} are unlocked on this machine only ({path}, readable by you only). "
            f"Restore with: backup-agent restore --from-machine {who} --point latest --target DIR"
        )
    return ExitCode.OK
