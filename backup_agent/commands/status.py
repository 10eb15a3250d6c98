"""``backup-agent status``, ``jobs`` and ``check``."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys

from .. import __version__
from ..api import redact_url
from ..config import check_cache_dir
from ..crypto import WrongPassphrase, unwrap_keys
from ..errors import AgentError, ExitCode, PortalUnreachable
from ..progress import human_bytes
from .context import config_dir, make_agent
from .output import local_time, out, table, throttling_text
from .passphrase import ask_passphrase


def cmd_status(args) -> int:
    cdir = config_dir(args)
    cfg = cdir.load()
    agent = make_agent(args, retries=1)
    code = ExitCode.OK
    try:
        portal_state = "reachable"
        try:
            document, fresh = agent.fetch_document()
            if not fresh:
                portal_state = "unreachable (showing the cached policy)"
                code = ExitCode.PORTAL_UNREACHABLE
        except PortalUnreachable as exc:
            document, portal_state = None, f"unreachable: {exc.message}"
            code = ExitCode.PORTAL_UNREACHABLE
        jobs = []
        if code == ExitCode.OK:
            with contextlib.suppress(AgentError):
                jobs = agent.portal.get("jobs/").get("jobs", [])
        keys_doc = cdir.load_keys_doc()
        cache = cdir.cache_dir(cfg)
        policy = (document or {}).get("policy")
        runs = (document or {}).get("next_runs") or []
        service_pid = cdir.is_locked("run")
        backup_pid = cdir.is_locked("backup")
        last_backup = next((j for j in jobs if j.get("kind") == "backup"), None)
        info = {
            "machine": cfg.machine_name,
            "machine_id": cfg.machine_id,
            "vault": cfg.vault_name,
            "subscription": cfg.subscription,
            "resource_group": cfg.resource_group,
            "region": cfg.region,
            "portal": cfg.portal_url,
            "portal_state": portal_state,
            "config_dir": str(cdir.path),
            "cache_dir": str(cache),
            "proxy": redact_url(cfg.proxy) if cfg.proxy else None,
            "keys": "unlocked on this machine"
            if keys_doc
            else "not unlocked (backup-agent unlock)",
            "keys_in_vault": bool(keys_doc and keys_doc.get("uploaded")),
            "policy": policy.get("name") if policy else None,
            "items": (policy or {}).get("items") or [],
            "next_backup": runs[0] if policy and runs else None,
            "throttling": (document or {}).get("throttling"),
            "service": f"running (process {service_pid})" if service_pid else "not running",
            "backup_running": bool(backup_pid),
            "last_backup": last_backup,
            "agent_version": __version__,
            "latest_agent_version": (document or {}).get("latest_agent_version"),
        }
        if args.json:
            out(json.dumps(info, indent=2, default=str))
            return code
        out(f"Machine       {cfg.machine_name} ({cfg.machine_id})")
        out(
            f"Vault         {cfg.vault_name}: subscription {cfg.subscription or '-'}, "
            f"resource group {cfg.resource_group or '-'}, region {cfg.region or '-'}"
        )
        out(f"Portal        {cfg.portal_url}: {portal_state}")
        if cfg.proxy:
            out(f"Proxy         {redact_url(cfg.proxy)}")
        out(f"Config        {cdir.path}")
        free = ""
        with contextlib.suppress(OSError):
            free = f" ({human_bytes(shutil.disk_usage(cache.parent if not cache.exists() else cache).free)} free)"
        out(f"Cache         {cache}{free}")
        out(
            "Keys          "
            + info["keys"]
            + (
                "; stored in the vault"
                if info["keys_in_vault"]
                else "; NOT yet stored in the vault"
            )
        )
        if policy:
            out(f"Policy        {policy.get('name')}: {', '.join(info['items']) or 'no items'}")
            out(f"Next backup   {local_time(info['next_backup'])}")
        else:
            out("Policy        none: assign a backup policy to this machine in the portal")
        out(f"Throttling    {throttling_text(info['throttling'])}")
        out(f"Service       {info['service']}" + ("; a backup is running" if backup_pid else ""))
        if last_backup:
            out(
                f"Last backup   {local_time(last_backup.get('started_at'))} "
                f"{last_backup.get('state')} ({last_backup.get('trigger')})"
            )
        latest = info["latest_agent_version"]
        out(
            f"Agent         {__version__}"
            + (f" (version {latest} is available)" if latest and latest != __version__ else "")
        )
        return code
    finally:
        agent.close()


def cmd_jobs(args) -> int:
    agent = make_agent(args, retries=2)
    try:
        jobs = agent.portal.get("jobs/").get("jobs", [])
    finally:
        agent.close()
    if args.json:
        out(json.dumps(jobs, indent=2, default=str))
        return ExitCode.OK
    if not jobs:
        out("No jobs yet.")
        return ExitCode.OK
    rows = []
    for j in jobs[: args.limit]:
        rows.append(
            [
                local_time(j.get("started_at")),
                j.get("kind", ""),
                j.get("trigger", ""),
                j.get("state", ""),
                f"{j.get('files_done') or 0:,}",
                human_bytes(j.get("bytes_scanned") or 0),
                human_bytes(j.get("bytes_uploaded") or 0),
                (j.get("error") or "")[:60],
            ]
        )
    out(
        table(
            rows, ["STARTED", "KIND", "TRIGGER", "STATE", "FILES", "SCANNED", "UPLOADED", "ERROR"]
        )
    )
    return ExitCode.OK


def cmd_check(args) -> int:
    import base64

    cdir = config_dir(args)
    cfg = cdir.load()
    failures: list[ExitCode] = []

    def report(name: str, ok: bool | None, text: str, code: ExitCode = ExitCode.ERROR):
        mark = {True: "OK  ", False: "FAIL", None: "--  "}[ok]
        out(f"[{mark}] {name}: {text}")
        if ok is False:
            failures.append(code)

    report("configuration", True, f"{cdir.path} (machine {cfg.machine_name})")
    try:
        cache = check_cache_dir(cdir.cache_dir(cfg))
        report(
            "cache folder",
            True,
            f"{cache}: local, writable, {human_bytes(shutil.disk_usage(cache).free)} free",
        )
    except AgentError as exc:
        report("cache folder", False, exc.message, exc.exit_code)
    agent = make_agent(args, retries=1)
    try:
        reachable = False
        try:
            agent.portal.request("GET", "config/")
            reachable = True
            report("portal", True, f"{cfg.portal_url} answers and accepts this machine's token")
        except AgentError as exc:
            report("portal", False, exc.message, exc.exit_code)
        if reachable:
            try:
                repo = agent.repository()
                points = repo.list_point_payloads()
                if points:
                    newest = points[-1]
                    data = repo.blobs.get(repo._download_url("manifest", newest["manifest"]), 0, 1)
                    report(
                        "blob storage",
                        len(data) == 1,
                        f"read the newest recovery point's file list ({local_time(newest.get('taken_at'))})",
                        ExitCode.STORAGE,
                    )
                else:
                    report("blob storage", None, "no backups yet; the first backup tests uploads")
            except AgentError as exc:
                report("blob storage", False, exc.message, exc.exit_code)
            except Exception as exc:  # noqa: BLE001 - RemoteError and friends
                code = getattr(exc, "exit_code", None) or ExitCode.STORAGE
                report("blob storage", False, str(exc), code)
        from ..api import clock_skew

        skew, against = agent.portal.clock_skew(), "the portal's"
        if skew is None:
            skew, against = clock_skew(agent.blobs), "blob storage's"
        if skew is None:
            report("clock", None, "not checked (no Date header from the portal or storage)")
        elif abs(skew) > 300:
            report(
                "clock",
                False,
                f"this machine's clock is {abs(skew):.0f} s "
                f"{'ahead of' if skew > 0 else 'behind'} {against}; set the time (NTP): "
                "schedules and signed URLs depend on it",
            )
        else:
            report("clock", True, f"within {max(1, round(abs(skew)))} s of {against}")
        keys_doc = cdir.load_keys_doc()
        if not keys_doc:
            report(
                "keys",
                False,
                "not unlocked on this machine: run backup-agent unlock",
                ExitCode.PASSPHRASE,
            )
        elif args.passphrase_file or sys.stdin.isatty():
            wrapped = None
            if reachable:
                with contextlib.suppress(AgentError):
                    blob = agent.portal.get("keys/").get("key_blob")
                    wrapped = base64.b64decode(blob) if blob else None
            source = "the vault's copy"
            if wrapped is None:
                wrapped, source = cdir.wrapped_keys(), "the local copy"
            passphrase = ask_passphrase(args, "Passphrase (to check it): ")
            try:
                bundle = unwrap_keys(wrapped, passphrase)
                same = bundle == cdir.load_keys()
                report(
                    "passphrase",
                    same,
                    f"unlocks {source} of the keys"
                    + ("" if same else ", but they differ from the keys on this machine"),
                    ExitCode.PASSPHRASE,
                )
            except WrongPassphrase:
                report(
                    "passphrase",
                    False,
                    f"does not unlock {source} of the keys",
                    ExitCode.PASSPHRASE,
                )
            if not keys_doc.get("uploaded"):
                report("keys", False, "not yet stored in the vault (the service retries)")
        else:
            report("passphrase", None, "not checked (no terminal; use --passphrase-file)")
    finally:
        agent.close()
    if failures:
        return failures[0]
    return ExitCode.OK
