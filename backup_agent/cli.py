"""``backup-agent``: register a machine, run the service, back up, restore.

Every failure ends with one message on stderr and a documented exit code
(``errors.ExitCode``; see ``backup_agent/README.md``). The commands themselves are in
``backup_agent.commands``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .commands.backup import cmd_backup
from .commands.output import note
from .commands.parsing import parse_days, parse_hours, parse_rate, parse_retain_until
from .commands.register import cmd_register
from .commands.restore import cmd_ls, cmd_points, cmd_restore, cmd_unlock
from .commands.run import cmd_run
from .commands.settings import cmd_change_passphrase, cmd_set_throttling
from .commands.status import cmd_check, cmd_jobs, cmd_status
from .errors import AgentError, ExitCode, UsageError, exit_code_for
from .platform import default_cache_dir

__all__ = [
    "main",
    "build_parser",
    "parse_rate",
    "parse_days",
    "parse_hours",
    "parse_retain_until",
    "UsageError",
]

log = logging.getLogger("backup_agent")

PROG = "backup-agent"


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
