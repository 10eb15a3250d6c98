"""Worker entry points (django-q2), thin wrappers around services."""

from agents.services.jobs import fail_silent_jobs
from vaults.data import expire_stale_leases


def watchdog():
    """Every minute: fail silent jobs, drop stale upload leases."""
    return {"failed_jobs": fail_silent_jobs(), "expired_leases": expire_stale_leases()}
