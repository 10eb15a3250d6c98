"""Passphrases and PINs: from a file, generated, or typed at the terminal."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from ..crypto import InvalidPassphrase, generate_passphrase, validate_passphrase
from ..errors import PassphraseError, UsageError
from .output import note

LOST_PASSPHRASE = (
    "Keep the passphrase somewhere safe, away from this machine. If it is lost, the backups "
    "of this machine cannot be restored: nobody, not the portal's operators either, can "
    "recover it."
)


def read_secret_file(path: str, what: str) -> str:
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


def require_tty(option: str, what: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError(f"No terminal to ask for the {what}: give it with {option} FILE.")


def check_passphrase(passphrase: str) -> str:
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
        return check_passphrase(read_secret_file(path, "passphrase"))
    require_tty(option, "passphrase")
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
        return read_secret_file(path, "passphrase")
    require_tty(option, "passphrase")
    return getpass.getpass(prompt)
