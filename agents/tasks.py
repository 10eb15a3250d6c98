"""Worker entry points (django-q2), thin wrappers around services."""

from agents.services.jobs import fail_silent_jobs
from vaults import alert_checks
from vaults.data import expire_stale_leases


def watchdog():
    """Every minute: fail silent jobs, drop stale upload leases, check alert conditions."""
    return {
        "failed_jobs": fail_silent_jobs(),
        "expired_leases": expire_stale_leases(),
        "alerts": alert_checks.run_checks(),
    }
