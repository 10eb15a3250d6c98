"""``backup-agent register``: a vault credentials file to a registered machine."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..api import PortalClient, redact_url
from ..config import AgentConfig, check_cache_dir
from ..crypto import KeyBundle, WrongPassphrase, unwrap_keys, wrap_keys
from ..errors import (
    AgentError,
    CredentialsRefused,
    ExitCode,
    PassphraseError,
    PortalNotFound,
    PortalRefused,
    PortalUnreachable,
    UsageError,
)
from ..platform import default_cache_dir, detect_timezone, host_name, os_description
from ..progress import human_bytes
from .context import config_dir
from .output import local_time, note, out
from .passphrase import LOST_PASSPHRASE, ask_new_passphrase, ask_passphrase, check_passphrase

CREDENTIALS_FORMAT = "backup-portal-vault-credentials/1"


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
        passphrase = check_passphrase(
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
