"""Exit codes of the ``backup-agent`` command and the errors that carry them.

Every failure the agent can explain is an ``AgentError``: one user-facing message and
the documented exit code (see ``backup_agent/README.md``). Anything else is a bug and
exits with ``ExitCode.ERROR``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ExitCode",
    "AgentError",
    "UsageError",
    "NotRegistered",
    "CredentialsRefused",
    "PassphraseError",
    "PortalUnreachable",
    "PortalRefused",
    "PortalNotFound",
    "Unauthorized",
    "StorageFailure",
    "CacheSpaceError",
    "Busy",
    "exit_code_for",
]


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected (a bug): the message and the log say more
    USAGE = 2  # wrong command line, missing file, a terminal needed for a prompt
    NOT_REGISTERED = 3  # no configuration, damaged configuration, or the token is refused
    CREDENTIALS_REFUSED = 4  # vault credentials file expired, used, forged or unreadable
    PASSPHRASE = 5  # wrong passphrase, or one that does not meet the rules
    PORTAL_UNREACHABLE = 6  # no answer (or only 5xx) from the portal after the retries
    STORAGE = 7  # blob storage refused or failed an upload/download after the retries
    CACHE_SPACE = 8  # cache folder too small (5% of the data) or not usable
    WARNINGS = 9  # the backup committed a recovery point but skipped some items
    REFUSED = 10  # the portal refused the request (no policy, quota, validation, ...)
    RESTORE_INCOMPLETE = 11  # the restore finished but some items failed (damaged/missing)
    BUSY = 12  # another agent process holds the lock (service or backup already running)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class AgentError(Exception):
    """An error with a user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(AgentError):
    exit_code = ExitCode.USAGE


class NotRegistered(AgentError):
    exit_code = ExitCode.NOT_REGISTERED


class CredentialsRefused(AgentError):
    exit_code = ExitCode.CREDENTIALS_REFUSED


class PassphraseError(AgentError):
    exit_code = ExitCode.PASSPHRASE


class PortalUnreachable(AgentError):
    exit_code = ExitCode.PORTAL_UNREACHABLE


class PortalRefused(AgentError):
    """A 4xx answer from the portal; ``message`` is the portal's own explanation."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, status: int = 400, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


class PortalNotFound(PortalRefused):
    pass


class Unauthorized(PortalRefused):
    exit_code = ExitCode.NOT_REGISTERED


class StorageFailure(AgentError):
    exit_code = ExitCode.STORAGE


class CacheSpaceError(AgentError):
    exit_code = ExitCode.CACHE_SPACE


class Busy(AgentError):
    exit_code = ExitCode.BUSY


def exit_code_for(exc: BaseException | None, default: ExitCode = ExitCode.ERROR) -> ExitCode:
    """The exit code of the first ``AgentError`` in ``exc``'s cause/context chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, AgentError):
            return exc.exit_code
        if isinstance(exc, KeyboardInterrupt):
            return ExitCode.INTERRUPTED
        exc = exc.__cause__ or exc.__context__
    return default
