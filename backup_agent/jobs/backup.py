"""Backup jobs: the policy's items to the vault, or offline to a folder to ship."""

from __future__ import annotations

import logging
import threading
import time

from .. import __version__
from ..backup import BackupError, InsufficientCacheSpace, run_backup
from ..config import check_cache_dir
from ..errors import AgentError, CacheSpaceError, ExitCode, exit_code_for
from ..platform import host_name
from ..progress import PortalReporter
from .common import (
    MAX_WARNINGS_SENT,
    NO_POLICY,
    BackupOutcome,
    Cancelled,
    JobFailed,
    NoPolicy,
    exclusions_from_policy,
    items_from_policy,
)

log = logging.getLogger("backup_agent.service")


class BackupJobs:
    """The backup methods of ``Agent``."""

    def backup(
        self,
        *,
        trigger: str,
        document: dict | None,
        command_id: str | None = None,
        retain_until: str | None = None,
        details: dict | None = None,
        progress=None,
        cancel: threading.Event | None = None,
        lock: bool = True,
    ) -> BackupOutcome:
        """Back up the policy's items as one job; raise ``AgentError`` on failure."""
        policy = (document or {}).get("policy")
        if not policy:
            raise NoPolicy(NO_POLICY)
        roots = items_from_policy(policy)
        if not roots:
            raise NoPolicy(
                f"The backup policy {policy.get('name', '')!r} lists no items to back up; add "
                "files or folders to it in the portal."
            )
        backup_lock = (
            self.cdir.lock("backup", "A backup is already running on this machine")
            if lock
            else None
        )
        try:
            self.apply_throttling(document)
            job_details = {"items": roots, "policy": policy.get("name"), **(details or {})}
            job_id = self._open_job(
                "backup",
                trigger,
                command_id=command_id,
                retain_until=retain_until,
                details=job_details,
            )
            log.info("backup job %s started (%s): %s", job_id, trigger, ", ".join(roots))
            try:
                keys = self.cdir.load_keys()
                cache = check_cache_dir(self.cdir.cache_dir(self.cfg))
            except AgentError as exc:
                self.finish_job(job_id, {"state": "failed", "error": exc.message})
                raise JobFailed(exc.message, exc.exit_code, job_id) from exc
            return self._run_backup_job(job_id, keys, roots, policy, cache, progress, cancel)
        finally:
            if backup_lock is not None:
                backup_lock.release()

    def backup_offline(self, target, *, document: dict | None, progress=None):
        """The reference's offline initial backup: write the policy's items, encrypted as
        always, to a staging folder instead of the network. The portal imports the folder
        once the disk has reached the platform; later backups send only what changed."""
        from ..repository import LocalRepository

        policy = (document or {}).get("policy")
        if not policy:
            raise NoPolicy(NO_POLICY)
        roots = items_from_policy(policy)
        keys = self.cdir.load_keys()
        cache = check_cache_dir(self.cdir.cache_dir(self.cfg))
        backup_lock = self.cdir.lock("backup", "A backup is already running on this machine")
        try:
            with LocalRepository(target) as staging:
                result = run_backup(
                    staging,
                    keys,
                    roots,
                    exclusions_from_policy(policy),
                    cache_dir=cache,
                    progress_callback=progress,
                    extra={"agent_version": __version__, "host": host_name(), "offline": True},
                )
        finally:
            backup_lock.release()
        return result

    def _run_backup_job(self, job_id, keys, roots, policy, cache, progress, cancel):
        reporter = PortalReporter(self._progress_sender(job_id))
        repo = self.repository()
        repo.job_id = job_id

        def callback(p):
            if cancel is not None and cancel.is_set() and p.phase not in ("committing", "done"):
                raise Cancelled("The agent service was stopped during the backup.")
            reporter(p)
            if progress is not None:
                progress(p)

        started = time.monotonic()
        try:
            result = run_backup(
                repo,
                keys,
                roots,
                exclusions_from_policy(policy),
                cache_dir=cache,
                progress_callback=callback,
                limiter=None,  # the repository paces PUT bodies itself
                extra={"agent_version": __version__, "host": host_name()},
            )
        except BaseException as exc:
            reporter.close()
            message, code = _backup_failure(exc)
            self.finish_job(job_id, {"state": "failed", "error": message})
            log.error("backup job %s failed: %s", job_id, message)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise JobFailed(message, code, job_id) from exc
        warnings = list(result.warnings)
        final = {
            "phase": "done",
            "files_total": result.stats["files"],
            "files_done": result.stats["files"],
            "bytes_total": result.stats["bytes_scanned"],
            "bytes_scanned": result.stats["bytes_scanned"],
            "bytes_new": result.stats["bytes_new"],
            "bytes_uploaded": result.stats["bytes_stored"],
        }
        reporter.close(final)
        stats = dict(result.stats)
        stats.update(
            {
                "already_stored": repo.stats["already_stored"],
                "storage_retries": self.blobs.retries_done,
                "duration_seconds": round(time.monotonic() - started, 1),
            }
        )
        self.finish_job(
            job_id,
            {
                "state": "completed_with_warnings" if warnings else "completed",
                "warnings": warnings[:MAX_WARNINGS_SENT],
                "point_id": result.point_id,
                "details": {"stats": stats},
            },
        )
        log.info(
            "backup job %s completed: point %s, %d files, %d bytes uploaded, %d warning(s)",
            job_id,
            result.point_id,
            stats["files"],
            stats["bytes_stored"],
            len(warnings),
        )
        return BackupOutcome(
            job_id,
            result.point_id,
            repo.point_payloads.get(result.point_id, {}),
            warnings,
            stats,
            result.duration,
        )


def _backup_failure(exc: BaseException) -> tuple[str, ExitCode]:
    if isinstance(exc, KeyboardInterrupt):
        return "The backup was interrupted; nothing was committed.", ExitCode.INTERRUPTED
    if isinstance(exc, Cancelled):
        return f"{exc} Nothing was committed.", ExitCode.INTERRUPTED
    if isinstance(exc, InsufficientCacheSpace):
        return str(exc), ExitCode.CACHE_SPACE
    if isinstance(exc, CacheSpaceError):
        return exc.message, ExitCode.CACHE_SPACE
    # the root cause, with the engine's "nothing was committed" framing
    code = exit_code_for(exc, ExitCode.ERROR)
    cause = exc
    seen = set()
    while id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, Cancelled | KeyboardInterrupt):
            return _backup_failure(cause)
        nxt = cause.__cause__
        if nxt is None:
            break
        cause = nxt
    detail = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    if code == ExitCode.ERROR and isinstance(exc, BackupError) and cause is exc:
        code = ExitCode.STORAGE
    return f"The backup failed and nothing was committed: {detail}", code
