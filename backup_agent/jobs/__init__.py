"""Jobs against the portal: backup, restore and browse.

``Agent`` binds a configuration folder to the portal and blob storage and runs one job:
it opens the job, streams progress, commits the recovery point and finishes the job
(``completed``, ``completed_with_warnings`` with the warnings, or ``failed`` with the
reason). The CLI commands and the service (``backup_agent.service``) share it.
"""

from .agent import Agent
from .common import (
    BackupOutcome,
    Cancelled,
    JobFailed,
    NoPolicy,
    RestoreOutcome,
    SwitchableLimiter,
    exclusions_from_policy,
    iso,
    items_from_policy,
    limiter_from_document,
    parse_instant,
)

__all__ = [
    "Agent",
    "BackupOutcome",
    "RestoreOutcome",
    "NoPolicy",
    "Cancelled",
    "JobFailed",
    "SwitchableLimiter",
    "exclusions_from_policy",
    "items_from_policy",
    "iso",
    "limiter_from_document",
    "parse_instant",
]
