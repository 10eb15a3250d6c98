"""``backup-agent``: register a machine, run the service, back up, restore.

Every failure ends with one message on stderr and a documented exit code
(``errors.ExitCode``; see ``backup_agent/README.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import logging.handlers
import os
import re
import shutil
import sys
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

from . import __version__
from .api import PortalClient, redact_url
from .config import AgentConfig, ConfigDir, check_cache_dir
from .crypto import (
    InvalidPassphrase,
    KeyBundle,
    WrongPassphrase,
    generate_passphrase,
    unwrap_keys,
    validate_passphrase,
    wrap_keys,
)
from .errors import (
    AgentError,
    CredentialsRefused,
    ExitCode,
    PassphraseError,
    PortalNotFound,
    PortalRefused,
    PortalUnreachable,
    UsageError,
    exit_code_for,
)
from .platform import default_cache_dir, detect_timezone, host_name, os_description
from .progress import TerminalProgress, human_bytes
from .throttle import MAX_RATE_BPS, MIN_RATE_BPS
from .throttle import validate_rate as _validate_rate

__all__ = ["main", "build_parser", "parse_rate", "parse_days", "parse_hours"]

log = logging.getLogger("backup_agent")

PROG = "backup-agent"
CREDENTIALS_FORMAT = "backup-portal-vault-credentials/1"
LOST_PASSPHRASE = (
    "Keep the passphrase somewhere safe, away from this machine. If it is lost, the backups "
    "of this machine cannot be restored: nobody, not the portal's operators either, can "
    "recover it."
)
DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# --------------------------------------------------------------------------- output helpers


def out(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def local_time(value) -> str:
    """An ISO string or unix time as local 'YYYY-MM-DD HH:MM'."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, int | float):
            dt = datetime.fromtimestamp(value, UTC)
        else:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
        return dt.astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, TypeError, OSError):
        return str(value)


def table(rows: list[list[str]], headers: list[str]) -> str:
    cells = [headers] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- parsing helpers


def parse_rate(text: str) -> int:
    """'512kbps', '1mbps', '100 Mbps', '1,023 Mbps', '2048' (Kbps) -> bits per second."""
    m = re.fullmatch(
        r"\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([kmg])?\s*(?:bps|bit/s|b/s|bits?)?\s*",
        str(text),
        re.IGNORECASE,
    )
    if not m:
        raise UsageError(f"{text!r} is not a bandwidth; write it like 512kbps, 10mbps or 1023mbps.")
    number = float(m.group(1).replace(",", ""))
    unit = (m.group(2) or "k").lower()
    bps = int(round(number * {"k": 1e3, "m": 1e6, "g": 1e9}[unit]))
    try:
        return _validate_rate(bps, "bandwidth")
    except ValueError as exc:
        raise UsageError(
            f"{text.strip()} is outside the allowed range: bandwidth goes from 512 Kbps to "
            f"1,023 Mbps ({MIN_RATE_BPS // 1000:,} to {MAX_RATE_BPS // 1000:,} Kbps)."
        ) from exc


def parse_days(text: str) -> list[int]:
    """'mon-fri', 'mon,wed,fri', 'sat-sun', 'all', '0-4' -> sorted weekday numbers."""
    text = text.strip().lower()
    if text in ("all", "every", "daily", "mon-sun"):
        return list(range(7))
    if text in ("none", ""):
        return []

    def day(token: str) -> int:
        token = token.strip()
        if token.isdigit() and 0 <= int(token) <= 6:
            return int(token)
        for i, name in enumerate(DAY_NAMES):
            if token[:3] == name and len(token) >= 3:
                return i
        raise UsageError(f"{token!r} is not a day; use mon, tue, wed, thu, fri, sat, sun.")

    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            start, end = day(a), day(b)
            i = start
            while True:
                days.add(i)
                if i == end:
                    break
                i = (i + 1) % 7
        else:
            days.add(day(part))
    return sorted(days)


def parse_hours(text: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m:
        raise UsageError(f"{text!r} is not a span of hours; write it like 09:00-17:00.")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    try:
        start, end = dtime(h1, m1), dtime(h2, m2)
    except ValueError as exc:
        raise UsageError(f"{text!r}: {exc}.") from exc
    if start >= end:
        raise UsageError("Work hours must start before they end (e.g. 09:00-17:00).")
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def parse_retain_until(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            dt = datetime.combine(datetime.fromisoformat(text).date(), dtime(23, 59, 59))
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"--retain-until {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from exc
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    if dt <= datetime.now(UTC):
        raise UsageError("--retain-until must be in the future.")
    return dt.isoformat()


# --------------------------------------------------------------------------- passphrases


def _read_secret_file(path: str, what: str) -> str:
    if path == "-":
        value = sys.stdin.readline()
    else:
        try:
            p = Path(path).expanduser()
            value = p.read_text()
            mode = p.stat().st_mode
            if mode & 0o077:
                note(
                    f"warning: {path} can be read by other users (mode {mode & 0o777:o}); "
                    f"chmod 600 it."
                )
        except FileNotFoundError:
            raise UsageError(f"The {what} file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"The {what} file {path} cannot be read: {exc}.") from exc
    return value.rstrip("\r\n")


def _require_tty(option: str, what: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError(f"No terminal to ask for the {what}: give it with {option} FILE.")


def _check_passphrase(passphrase: str) -> str:
    try:
        validate_passphrase(passphrase)
    except InvalidPassphrase as exc:
        raise PassphraseError(str(exc)) from exc
    return passphrase


def ask_new_passphrase(args, *, option: str = "--passphrase-file") -> str:
    """A new passphrase from a file, a generated one, or typed twice."""
    generate = getattr(args, "generate_passphrase", None)
    if generate:
        passphrase = generate_passphrase()
        path = Path(generate).expanduser()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(
                f"{path} already exists; --generate-passphrase never overwrites a file."
            ) from None
        except OSError as exc:
            raise UsageError(f"Cannot create {path}: {exc.strerror or exc}.") from exc
        with os.fdopen(fd, "w") as f:
            f.write(passphrase + "\n")
        note(f"A new passphrase was written to {path} (readable by you only).")
        return passphrase
    path = getattr(args, "passphrase_file", None)
    if path:
        return _check_passphrase(_read_secret_file(path, "passphrase"))
    _require_tty(option, "passphrase")
    note(
        "Choose an encryption passphrase: at least 16 printable ASCII characters "
        "(letters, digits, punctuation, spaces)."
    )
    for _ in range(3):
        first = getpass.getpass("Passphrase: ")
        try:
            validate_passphrase(first)
        except InvalidPassphrase as exc:
            note(str(exc))
            continue
        if getpass.getpass("Passphrase again: ") != first:
            note("The two passphrases differ; try again.")
            continue
        return first
    raise PassphraseError("No valid passphrase was entered.")


def ask_passphrase(args, prompt: str = "Passphrase: ", *, option="--passphrase-file") -> str:
    path = getattr(args, "passphrase_file", None)
    if path:
        return _read_secret_file(path, "passphrase")
    _require_tty(option, "passphrase")
    return getpass.getpass(prompt)


# --------------------------------------------------------------------------- context


def config_dir(args) -> ConfigDir:
    return ConfigDir(getattr(args, "config_dir", None))


def make_agent(args, **kwargs):
    from .jobs import Agent

    return Agent(config_dir(args), **kwargs)


# --------------------------------------------------------------------------- register


def read_credentials(path: str) -> dict:
    try:
        raw = Path(path).expanduser().read_text()
    except FileNotFoundError:
        raise UsageError(f"The vault credentials file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsRefused(
            f"The vault credentials file {path} cannot be read: {exc}."
        ) from exc
    try:
        cred = json.loads(raw)
        if not isinstance(cred, dict) or cred.get("format") != CREDENTIALS_FORMAT:
            raise ValueError("unknown format")
        for key in ("portal_url", "vault_id", "vault_name", "registration_secret", "expires_at"):
            if not cred.get(key):
                raise ValueError(f"{key} is missing")
        expires = datetime.fromisoformat(str(cred["expires_at"]).replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        cred["_expires"] = expires
    except (ValueError, TypeError) as exc:
        raise CredentialsRefused(
            f"{path} is not a valid vault credentials file ({exc}). Download it again from the "
            "vault's Getting started → Backup page in the portal."
        ) from exc
    return cred


def cmd_register(args) -> int:
    cred = read_credentials(args.credentials)
    expires = cred["_expires"]
    out("Vault identification")
    out(f"  Vault           {cred['vault_name']}")
    out(f"  Subscription    {cred.get('subscription_name') or cred.get('subscription_id', '-')}")
    out(f"  Resource group  {cred.get('resource_group') or '-'}")
    out(f"  Region          {cred.get('region') or '-'}")
    out(f"  Portal          {cred['portal_url']}")
    out(f"  File valid to   {local_time(expires.isoformat())}")
    if expires <= datetime.now(UTC):
        raise CredentialsRefused(
            f"This vault credentials file expired on {local_time(expires.isoformat())}. "
            "Download a new one from the vault's Getting started → Backup page (a file is "
            "valid for 10 days and registers one machine)."
        )
    if args.generate_passphrase and args.passphrase_file:
        raise UsageError("Give either --passphrase-file or --generate-passphrase, not both.")
    if args.generate_passphrase and args.reregister:
        raise UsageError(
            "--reregister keeps the machine's keys: give its existing passphrase "
            "(--passphrase-file or at the prompt) instead of --generate-passphrase."
        )
    cdir = config_dir(args)
    if cdir.exists() and not args.reregister:
        try:
            current = cdir.load()
            what = f"{current.machine_name} with vault {current.vault_name}"
        except AgentError:
            what = "a machine (the configuration is damaged)"
        raise UsageError(
            f"{cdir.path} already registers {what}. To register again, use --reregister "
            "(with a new vault credentials file and the machine's passphrase)."
        )

    # prerequisites ------------------------------------------------------------------
    out("Checking prerequisites")
    if sys.version_info < (3, 11):  # noqa: UP036 - the wheel may be installed anywhere
        raise UsageError(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}).")
    out(f"  Python          {sys.version.split()[0]}: OK")
    cache = check_cache_dir(Path(args.cache_dir) if args.cache_dir else default_cache_dir())
    free = shutil.disk_usage(cache).free
    out(f"  Cache folder    {cache}: local and writable, {human_bytes(free)} free")
    out("                  (it needs free space of at least 5% of the data to back up)")
    portal = PortalClient(cred["portal_url"], proxy=args.proxy, retries=2)
    try:
        response = portal.request("GET", "config/", auth=False, ok=(200, 401, 403))
    except PortalNotFound as exc:
        raise PortalUnreachable(
            f"{cred['portal_url']} does not answer like a Backup Portal ({exc.message})."
        ) from exc
    except PortalRefused as exc:
        raise PortalUnreachable(
            f"{cred['portal_url']} does not answer like a Backup Portal ({exc.message})."
        ) from exc
    via = f" through proxy {redact_url(args.proxy)}" if args.proxy else ""
    out(f"  Portal          reachable{via} (HTTP {response.status_code}): OK")

    # passphrase ---------------------------------------------------------------------
    if args.reregister:
        passphrase = _check_passphrase(
            ask_passphrase(args, "Passphrase of this machine (as set when it was registered): ")
        )
    else:
        passphrase = ask_new_passphrase(args)

    # register -----------------------------------------------------------------------
    name = args.machine_name or host_name()
    body = {
        "registration_secret": cred["registration_secret"],
        "host_name": name,
        "os_name": os_description(),
        "agent_version": __version__,
        "time_zone": detect_timezone(),
        "reregister": bool(args.reregister),
    }
    try:
        reg = portal.post("register/", body, idempotent=False)
    except PortalUnreachable:
        raise
    except PortalRefused as exc:
        if exc.status == 429:
            raise
        raise CredentialsRefused(f"The portal refused the registration: {exc.message}") from exc
    cfg = AgentConfig(
        portal_url=cred["portal_url"].rstrip("/"),
        machine_id=str(reg["machine_id"]),
        machine_name=name,
        token=str(reg["token"]),
        vault_id=str(reg.get("vault_id") or cred["vault_id"]),
        vault_name=str(reg.get("vault_name") or cred["vault_name"]),
        subscription=str(cred.get("subscription_name") or cred.get("subscription_id") or ""),
        resource_group=str(cred.get("resource_group") or ""),
        region=str(cred.get("region") or ""),
        cache_dir=str(cache),
        proxy=args.proxy or None,
        registered_at=datetime.now(UTC).isoformat(),
    )
    cdir.save(cfg)
    for stale in (cdir.document_file, cdir.state_file, cdir.path / "outbox.json"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    out(f"Registered {name} with vault {cfg.vault_name} (machine id {cfg.machine_id}).")

    # keys ---------------------------------------------------------------------------
    import base64

    portal.token = cfg.token
    existing = reg.get("key_blob")
    if existing:
        wrapped = base64.b64decode(existing)
        try:
            bundle = unwrap_keys(wrapped, passphrase)
        except WrongPassphrase:
            with contextlib.suppress(FileNotFoundError):
                cdir.keys_file.unlink()
            raise PassphraseError(
                f"The machine is registered, but this passphrase does not unlock the keys "
                f"{name} already has in the vault. Backups and restores cannot run until "
                f"the right passphrase is given: backup-agent unlock"
            ) from None
        except ValueError as exc:
            raise PassphraseError(str(exc)) from exc
        cdir.save_keys(name, wrapped, bundle, uploaded=True)
        out("The passphrase unlocks the machine's existing keys: its backups stay readable.")
    else:
        confirm = args.reregister and not args.passphrase_file and sys.stdin.isatty()
        if confirm and getpass.getpass("Passphrase again (new keys are created): ") != passphrase:
            raise PassphraseError("The two passphrases differ; register again.")
        bundle = KeyBundle.generate()
        wrapped = wrap_keys(bundle, passphrase)
        cdir.save_keys(name, wrapped, bundle, uploaded=False)
        try:
            portal.put("keys/", {"key_blob": base64.b64encode(wrapped).decode()})
            cdir.mark_keys_uploaded()
            out(
                "New encryption keys were created; the vault stores them wrapped by the passphrase."
            )
        except AgentError as exc:
            note(
                f"warning: the wrapped keys could not be stored in the vault yet ({exc.message}); "
                "the service retries when it starts."
            )
    out("")
    out(LOST_PASSPHRASE)
    out("")
    out(f"Configuration: {cdir.path}   Cache: {cache}")
    out("Next: start the service (backup-agent run), and assign a backup policy to")
    out(f"{name} in the portal; or back up now with: backup-agent backup")
    portal.close()
    return ExitCode.OK


# --------------------------------------------------------------------------- run


def setup_service_logging(cdir: ConfigDir, verbose: bool) -> None:
    cdir.ensure()
    logger = logging.getLogger("backup_agent")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s")
    fileh = logging.handlers.RotatingFileHandler(
        cdir.log_file, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    fileh.setFormatter(fmt)
    with contextlib.suppress(OSError):
        os.chmod(cdir.log_file, 0o600)
    logger.handlers = [fileh]
    errh = logging.StreamHandler(sys.stderr)
    errh.setFormatter(fmt)
    logger.addHandler(errh)
    logger.propagate = False


def cmd_run(args) -> int:
    from .service import Service

    cdir = config_dir(args)
    cdir.load()  # clear message when not registered, before the log file exists
    holder = cdir.is_locked("run")
    if holder:
        from .errors import Busy

        raise Busy(
            f"backup-agent run is already running with {cdir.path} (process {holder}). "
            "Only one service may use a configuration folder."
        )
    setup_service_logging(cdir, args.verbose)
    agent = make_agent(args)
    service = Service(agent)
    service.install_signal_handlers()
    try:
        return service.run()
    finally:
        agent.close()


# --------------------------------------------------------------------------- backup


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
            from .jobs import items_from_policy

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


# --------------------------------------------------------------------------- status & lists


def _throttling_text(t: dict | None) -> str:
    if not t or not t.get("enabled"):
        return "off"
    days = ",".join(DAY_NAMES[d] for d in t.get("work_days") or [])
    work = (t.get("work_hours_kbps") or 0) * 1000
    off = (t.get("off_hours_kbps") or 0) * 1000
    return (
        f"{_rate_text(work)} on {days or 'no days'} {t.get('work_start')}-{t.get('work_end')}, "
        f"{_rate_text(off)} otherwise"
    )


def _rate_text(bps: int) -> str:
    if bps >= 1_000_000:
        return f"{bps / 1e6:g} Mbps"
    return f"{bps / 1e3:g} Kbps"


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
        out(f"Throttling    {_throttling_text(info['throttling'])}")
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


# --------------------------------------------------------------------------- restore


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


# --------------------------------------------------------------------------- keys


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


def cmd_change_passphrase(args) -> int:
    import base64

    cdir = config_dir(args)
    cfg = cdir.load()
    bundle = cdir.load_keys()
    old = cdir.wrapped_keys()
    params = None
    if old:
        with contextlib.suppress(ValueError, KeyError):
            doc = json.loads(old)
            params = {"n": doc["n"], "r": doc["r"], "p": doc["p"]}
    if args.pin_file:
        pin = _read_secret_file(args.pin_file, "security PIN").strip()
    elif args.pin:
        pin = args.pin.strip()
    else:
        _require_tty("--pin-file", "security PIN")
        note("Generate a security PIN in the portal: vault → Properties → Security settings.")
        pin = input("Security PIN: ").strip()
    if not re.fullmatch(r"\d{8}", pin):
        raise UsageError("A security PIN is 8 digits, as shown in the portal.")
    passphrase = ask_new_passphrase(args)
    wrapped = wrap_keys(bundle, passphrase, scrypt_params=params)
    agent = make_agent(args, retries=2)
    try:
        agent.portal.put("keys/", {"key_blob": base64.b64encode(wrapped).decode(), "pin": pin})
    finally:
        agent.close()
    cdir.save_keys(cfg.machine_name, wrapped, bundle, uploaded=True)
    out(f"The passphrase of {cfg.machine_name} was changed; existing backups stay readable.")
    out(LOST_PASSPHRASE)
    return ExitCode.OK


# --------------------------------------------------------------------------- throttling


def cmd_set_throttling(args) -> int:
    if args.enable == args.disable:
        raise UsageError("Give --enable (with the rates and hours) or --disable.")
    if args.disable:
        body = {"enabled": False}
    else:
        if not (args.work_rate and args.off_rate):
            raise UsageError("--enable needs --work-rate and --off-rate (e.g. 1mbps and 100mbps).")
        start, end = parse_hours(args.work_hours)
        body = {
            "enabled": True,
            "work_days": parse_days(args.work_days),
            "work_start": start,
            "work_end": end,
            "work_hours_kbps": parse_rate(args.work_rate) // 1000,
            "off_hours_kbps": parse_rate(args.off_rate) // 1000,
        }
    agent = make_agent(args, retries=2)
    try:
        try:
            agent.portal.put("throttling/", body)
        except PortalNotFound as exc:
            raise PortalRefused(
                "This portal does not accept throttling changes from the agent yet "
                "(PUT /api/agent/v1/throttling/ answered 404). Set throttling in the portal "
                "instead: the machine's page → Throttling.",
                404,
            ) from exc
        with contextlib.suppress(AgentError):
            agent.fetch_document()
    finally:
        agent.close()
    out("Throttling " + ("disabled." if args.disable else f"set: {_throttling_text(body)}."))
    return ExitCode.OK


# --------------------------------------------------------------------------- check


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
        from .api import clock_skew

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


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="configuration folder (default $BACKUP_AGENT_CONFIG, /etc/backup-agent for root, "
        "else ~/.config/backup-agent)",
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Backup Portal agent: back up this machine to a Recovery Services vault.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "register", parents=[common], help="register this machine with a vault (once)"
    )
    p.add_argument("--credentials", required=True, metavar="FILE", help="vault credentials file")
    p.add_argument(
        "--passphrase-file", metavar="FILE", help="read the passphrase from FILE ('-' = stdin)"
    )
    p.add_argument(
        "--generate-passphrase", metavar="FILE", help="create a strong passphrase in FILE (0600)"
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", help=f"local cache folder (default {default_cache_dir()})"
    )
    p.add_argument(
        "--proxy", metavar="URL", help="HTTP(S) proxy, e.g. http://user:password@proxy:3128"
    )
    p.add_argument("--machine-name", metavar="NAME", help="name in the vault (default: host name)")
    p.add_argument("--reregister", action="store_true", help="replace this machine's registration")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser(
        "run", parents=[common], help="run the service (scheduled backups, commands)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backup", parents=[common], help="back up now (Back Up Now)")
    p.add_argument(
        "--wait",
        action="store_true",
        help="accepted for compatibility: backups always run in the foreground",
    )
    p.add_argument("--retain-until", metavar="DATE", help="keep this point until DATE (YYYY-MM-DD)")
    p.add_argument(
        "--offline-to",
        metavar="DIR",
        help="initial backup offline: write it to DIR (a disk to ship) instead of the network",
    )
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "status", parents=[common], help="registration, policy, service, last backup"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("jobs", parents=[common], help="recent jobs of this machine")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("recovery-points", parents=[common], help="list recovery points")
    p.add_argument("--machine", metavar="NAME", help="another machine of the vault")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_points)

    p = sub.add_parser(
        "check", parents=[common], help="check portal, storage, clock and passphrase"
    )
    p.add_argument("--passphrase-file", metavar="FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("set-throttling", parents=[common], help="bandwidth throttling")
    p.add_argument("--enable", action="store_true")
    p.add_argument("--disable", action="store_true")
    p.add_argument("--work-days", default="mon-fri", metavar="DAYS", help="e.g. mon-fri (default)")
    p.add_argument(
        "--work-hours", default="09:00-17:00", metavar="HH:MM-HH:MM", help="default 09:00-17:00"
    )
    p.add_argument(
        "--work-rate", metavar="RATE", help="during work hours, e.g. 1mbps (512kbps-1023mbps)"
    )
    p.add_argument("--off-rate", metavar="RATE", help="outside work hours, e.g. 100mbps")
    p.set_defaults(func=cmd_set_throttling)

    p = sub.add_parser(
        "change-passphrase", parents=[common], help="set a new passphrase (needs a security PIN)"
    )
    p.add_argument("--passphrase-file", metavar="FILE", help="the new passphrase")
    p.add_argument(
        "--generate-passphrase", metavar="FILE", help="create a strong new passphrase in FILE"
    )
    p.add_argument("--pin", metavar="PIN", help="the vault's security PIN (else prompted)")
    p.add_argument("--pin-file", metavar="FILE", help="read the security PIN from FILE")
    p.set_defaults(func=cmd_change_passphrase)

    p = sub.add_parser("ls", parents=[common], help="list a folder of a recovery point")
    p.add_argument("point", metavar="POINT", help="point id (or a unique prefix), or 'latest'")
    p.add_argument("path", metavar="PATH", nargs="?", default="", help="folder (default: top)")
    p.add_argument("--machine", metavar="NAME", help="another machine of the vault (unlocked)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("restore", parents=[common], help="restore files from a recovery point")
    p.add_argument("--point", required=True, metavar="POINT", help="point id, prefix or 'latest'")
    p.add_argument("--target", required=True, metavar="DIR", help="folder to restore into")
    p.add_argument(
        "--path", action="append", metavar="P", help="only this file/folder (repeatable)"
    )
    p.add_argument("--on-conflict", choices=["overwrite", "skip", "copy"], default="overwrite")
    p.add_argument("--from-machine", metavar="NAME", help="restore another machine's backup")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("unlock", parents=[common], help="unlock keys with a passphrase")
    p.add_argument("--machine", metavar="NAME", help="another machine of the vault (for restores)")
    p.add_argument("--passphrase-file", metavar="FILE")
    p.set_defaults(func=cmd_unlock)
    return parser


def _setup_cli_logging(verbose: bool) -> None:
    logger = logging.getLogger("backup_agent")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    if args.command != "run":
        _setup_cli_logging(getattr(args, "verbose", False))
    args.verbose = getattr(args, "verbose", False)
    try:
        return int(args.func(args))
    except AgentError as exc:
        note(f"{PROG}: {exc.message}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        note(f"{PROG}: interrupted.")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, details with -v
        if args.verbose:
            log.exception("error")
        code = getattr(exc, "exit_code", None) or exit_code_for(exc)
        if code != ExitCode.ERROR:  # a repository error wrapping a known cause
            note(f"{PROG}: {getattr(exc, 'message', None) or exc}")
            return int(code)
        note(
            f"{PROG}: unexpected error: {type(exc).__name__}: {exc} (run again with -v for details)"
        )
        return int(ExitCode.ERROR)


if __name__ == "__main__":
    sys.exit(main())
