"""``backup-agent set-throttling`` and ``change-passphrase``."""

from __future__ import annotations

import contextlib
import json
import re

from ..crypto import wrap_keys
from ..errors import AgentError, ExitCode, PortalNotFound, PortalRefused, UsageError
from .context import config_dir, make_agent
from .output import note, out, throttling_text
from .parsing import parse_days, parse_hours, parse_rate
from .passphrase import LOST_PASSPHRASE, ask_new_passphrase, read_secret_file, require_tty


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
    out("Throttling " + ("disabled." if args.disable else f"set: {throttling_text(body)}."))
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
        pin = read_secret_file(args.pin_file, "security PIN").strip()
    elif args.pin:
        pin = args.pin.strip()
    else:
        require_tty("--pin-file", "security PIN")
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
