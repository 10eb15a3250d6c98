"""Jobs against the portal (backup, restore, browse) and the ``backup-agent run`` service.

``Agent`` binds a configuration folder to the portal and blob storage and runs one job:
it opens the job, streams progress, commits the recovery point and finishes the job
(``completed``, ``completed_with_warnings`` with the warnings, or ``failed`` with the
reason). The CLI commands and the service share it.

``Service`` is the long-running part:

* one instance per configuration folder (``run.lock``);
* reports its version, OS and time zone (``PATCH config/``);
* polls ``GET config/`` with ``If-None-Match`` every ``poll_interval`` seconds (±10%
  jitter) and caches the document on disk;
* holds a long poll (``GET commands/wait/?timeout=25``) in a thread, so portal commands
  (backup, restore, browse) start within seconds;
* runs scheduled backups at the document's ``next_runs`` instants, from the cached
  document when the portal is unreachable. A backup needs the portal for storage URLs,
  so a scheduled run that cannot reach it is retried every ``retry_interval`` seconds
  (60) until the portal answers, up to the next scheduled run; a run overtaken by the
  next one is reported to the portal as a missed (failed) scheduled job once it answers;
* applies the document's bandwidth throttling to backups and restores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from . import __version__
from .api import BlobClient, PortalClient
from .backup import BackupError, InsufficientCacheSpace, run_backup
from .config import AgentConfig, ConfigDir, check_cache_dir
from .errors import (
    AgentError,
    Busy,
    CacheSpaceError,
    ExitCode,
    PassphraseError,
    PortalRefused,
    PortalUnreachable,
    Unauthorized,
    UsageError,
    exit_code_for,
)
from .platform import detect_timezone, host_name, os_description
from .progress import PortalReporter
from .remote import HttpRepository
from .repository import NotFound
from .restore import RestoreError, run_restore
from .scanner import Exclusion
from .throttle import BandwidthLimiter, ThrottleSchedule
from .tree import Tree

__all__ = [
    "Agent",
    "Service",
    "BackupOutcome",
    "RestoreOutcome",
    "NoPolicy",
    "Cancelled",
    "SwitchableLimiter",
    "limiter_from_document",
    "parse_instant",
]

log = logging.getLogger("backup_agent.service")

NO_POLICY = "No backup policy is assigned to this machine; assign one in the portal."
MAX_WARNINGS_SENT = 200


class NoPolicy(AgentError):
    exit_code = ExitCode.REFUSED


class Cancelled(Exception):
    """Raised from a progress callback to stop a running job (service shutdown)."""


def parse_instant(value: str) -> float:
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# --------------------------------------------------------------------------- throttling


def limiter_from_document(document: dict | None) -> BandwidthLimiter | None:
    """The document's throttling as a limiter (None when off or incomplete)."""
    t = (document or {}).get("throttling") or {}
    if not t.get("enabled"):
        return None
    try:
        work = int(t.get("work_hours_kbps") or 0) * 1000
        off = int(t.get("off_hours_kbps") or 0) * 1000
        days = frozenset(int(d) for d in (t.get("work_days") or []))
        start = dtime.fromisoformat(t.get("work_start") or "09:00")
        end = dtime.fromisoformat(t.get("work_end") or "17:00")
        schedule = ThrottleSchedule(work, off, days, start, end)
    except (TypeError, ValueError) as exc:
        log.warning("ignoring invalid throttling settings %r: %s", t, exc)
        return None
    zone_name = (document or {}).get("time_zone") or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except Exception:  # noqa: BLE001 - unknown zone: the machine's local time
        zone = None
    return BandwidthLimiter(schedule, now=lambda: datetime.now(zone))


class SwitchableLimiter:
    """A limiter whose target can be swapped while a transfer runs (new document)."""

    enabled = True

    def __init__(self, target=None):
        self.target = target

    def consume(self, nbytes: int) -> None:
        target = self.target
        if target is not None:
            target.consume(nbytes)

    def current_rate_bps(self):
        target = self.target
        return target.current_rate_bps() if target is not None else None


# --------------------------------------------------------------------------- policy items


def exclusions_from_policy(policy: dict) -> list[Exclusion]:
    rules = []
    for item in policy.get("exclusions") or []:
        try:
            if isinstance(item, str):
                if "/" in item or "\\" in item:
                    rules.append(Exclusion(folder=item))
                else:
                    rules.append(Exclusion(pattern=item))
            elif isinstance(item, dict):
                rules.append(
                    Exclusion(
                        folder=item.get("folder") or item.get("path") or None,
                        pattern=item.get("pattern") or None,
                        include_subfolders=bool(item.get("include_subfolders", True)),
                    )
                )
        except ValueError as exc:
            log.warning("ignoring exclusion %r: %s", item, exc)
    return rules


def items_from_policy(policy: dict) -> list[str]:
    out = []
    for item in policy.get("items") or []:
        if isinstance(item, dict):
            item = item.get("path") or ""
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
    return out


# --------------------------------------------------------------------------- outcomes


@dataclass
class BackupOutcome:
    job_id: str
    point_id: str
    point: dict
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    duration: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.WARNINGS if self.warnings else ExitCode.OK


@dataclass
class RestoreOutcome:
    job_id: str | None
    files: int
    dirs: int
    symlinks: int
    bytes: int
    skipped: list[str]
    renamed: dict
    failures: list[tuple[str, str]]
    warnings: list[str]
    duration: float

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.RESTORE_INCOMPLETE if self.failures else ExitCode.OK


class JobFailed(AgentError):
    """A job ran and failed; the portal has been told (``job_id``)."""

    def __init__(self, message: str, exit_code: ExitCode, job_id: str | None):
        super().__init__(message, exit_code)
        self.job_id = job_id


# --------------------------------------------------------------------------- the agent


class Agent:
    """A registered machine: its configuration, portal client, blob client and keys."""

    def __init__(
        self,
        cdir: ConfigDir,
        cfg: AgentConfig | None = None,
        *,
        retries: int | None = None,
        transport=None,
        blob_transport=None,
    ):
        self.cdir = cdir
        self.cfg = cfg or cdir.load()
        env_retries = os.environ.get("BACKUP_AGENT_RETRIES")
        if retries is None and env_retries and env_retries.isdigit():
            retries = int(env_retries)
        self.portal = PortalClient(
            self.cfg.portal_url,
            self.cfg.token,
            proxy=self.cfg.proxy,
            retries=5 if retries is None else retries,
            transport=transport,
        )
        self.blobs = BlobClient(proxy=self.cfg.proxy, transport=blob_transport)
        self.limiter = SwitchableLimiter()
        self._tree_cache: OrderedDict[tuple, Tree] = OrderedDict()
        self._tree_lock = threading.Lock()
        self._outbox_lock = threading.Lock()

    def close(self) -> None:
        self.portal.close()
        self.blobs.close()

    # ------------------------------------------------------------------ keys & repos
    def is_own(self, machine: str | None) -> bool:
        return not machine or machine.lower() == self.cfg.machine_name.lower()

    def keys_for(self, machine: str | None = None):
        if self.is_own(machine):
            return self.cdir.load_keys()
        bundle = self.cdir.load_unlocked(machine)
        if bundle is None:
            raise PassphraseError(
                f"The keys of {machine} are not unlocked on this machine. Run: "
                f"backup-agent unlock --machine {machine} (it asks for {machine}'s passphrase)."
            )
        return bundle

    def repository(self, machine: str | None = None) -> HttpRepository:
        return HttpRepository(
            self.portal,
            self.blobs,
            machine=None if self.is_own(machine) else machine,
            limiter=self.limiter,
        )

    # ------------------------------------------------------------------ document
    def fetch_document(self, *, allow_cached: bool = True) -> tuple[dict | None, bool]:
        """(document, fresh): the portal's current document, or the cached copy when the
        portal cannot be reached (fresh=False)."""
        cached, etag = self.cdir.load_document()
        headers = {"If-None-Match": etag} if etag and cached is not None else None
        try:
            response = self.portal.request("GET", "config/", headers=headers)
        except PortalUnreachable:
            if allow_cached and cached is not None:
                log.info("the portal is unreachable; using the cached policy document")
                return cached, False
            raise
        if response.status_code == 304 and cached is not None:
            return cached, True
        document = response.json()
        self.cdir.save_document(document, response.headers.get("ETag"))
        return document, True

    def apply_throttling(self, document: dict | None) -> None:
        self.limiter.target = limiter_from_document(document)

    # ------------------------------------------------------------------ job plumbing
    def _open_job(self, kind: str, trigger: str, **extra) -> str:
        body = {"kind": kind, "trigger": trigger}
        body.update({k: v for k, v in extra.items() if v is not None})
        return str(self.portal.post("jobs/", body, idempotent=False)["id"])

    def _progress_sender(self, job_id: str):
        def send(values: dict) -> None:
            self.portal.post(f"jobs/{job_id}/progress/", values, retries=2)

        return send

    def finish_job(self, job_id: str, body: dict) -> None:
        """Finish a job; if the portal cannot be told now, keep it for later (outbox)."""
        try:
            self.portal.post(f"jobs/{job_id}/finish/", body)
        except PortalUnreachable as exc:
            log.warning("could not report the end of job %s now (%s); kept for later", job_id, exc)
            self._outbox_add({"job_id": job_id, "body": body})
        except PortalRefused as exc:
            log.warning("the portal refused the end of job %s: %s", job_id, exc)

    def _outbox_path(self) -> Path:
        return self.cdir.path / "outbox.json"

    def _outbox_add(self, entry: dict) -> None:
        with self._outbox_lock, self.cdir.lock_blocking("outbox"):
            items = self._outbox_read()
            items.append(entry)
            self._outbox_write(items)

    def _outbox_read(self) -> list:
        try:
            data = json.loads(self._outbox_path().read_text())
            return data if isinstance(data, list) else []
        except (OSError, ValueError):
            return []

    def _outbox_write(self, items: list) -> None:
        from .config import write_private

        if items:
            write_private(self._outbox_path(), json.dumps(items))
        else:
            with contextlib.suppress(FileNotFoundError):
                self._outbox_path().unlink()

    def flush_outbox(self) -> int:
        """Send job ends that could not be sent before. Returns how many were sent."""
        if not self._outbox_path().exists():
            return 0
        sent = 0
        with self._outbox_lock, self.cdir.lock_blocking("outbox"):
            items = self._outbox_read()
            left = []
            for entry in items:
                try:
                    self.portal.post(f"jobs/{entry['job_id']}/finish/", entry["body"], retries=1)
                    sent += 1
                except PortalUnreachable:
                    left.append(entry)
                except (PortalRefused, KeyError, TypeError) as exc:
                    log.warning("dropping an unsendable job report: %s", exc)
            self._outbox_write(left)
        return sent

    # ------------------------------------------------------------------ backup
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
        from .repository import LocalRepository

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

    # ------------------------------------------------------------------ points
    def resolve_point(self, repo: HttpRepository, spec: str) -> dict:
        """A point payload from ``latest``, a full id or a unique id prefix."""
        spec = (spec or "").strip()
        points = self.list_points(repo)
        if not points:
            who = repo.machine or self.cfg.machine_name
            raise UsageError(f"{who} has no recovery points yet.")
        if spec.lower() in ("latest", "newest", "last"):
            return points[-1]
        matches = [p for p in points if str(p["id"]).lower().startswith(spec.lower())]
        if len(matches) == 1 and (len(spec) >= 4 or spec == matches[0]["id"]):
            return matches[0]
        if len(matches) > 1:
            raise UsageError(
                f"{spec!r} matches {len(matches)} recovery points; give more of the id."
            )
        raise UsageError(
            f"No recovery point {spec!r}. List them with: backup-agent recovery-points"
            + (f" --machine {repo.machine}" if repo.machine else "")
        )

    def list_points(self, repo: HttpRepository) -> list[dict]:
        try:
            return repo.list_point_payloads()
        except NotFound as exc:
            if repo.machine:
                raise UsageError(
                    f"No machine named {repo.machine} is registered in this vault."
                ) from exc
            raise

    def load_tree(self, repo: HttpRepository, keys, payload: dict) -> Tree:
        key = (repo.machine or "", str(payload["id"]))
        with self._tree_lock:
            tree = self._tree_cache.get(key)
            if tree is not None:
                self._tree_cache.move_to_end(key)
                return tree
        from .crypto import IntegrityError

        try:
            blob = repo.get_blob("manifest", payload["manifest"])
        except NotFound as exc:
            raise AgentError(
                f"The file list of recovery point {payload['id']} is missing from storage.",
                ExitCode.RESTORE_INCOMPLETE,
            ) from exc
        try:
            tree = Tree.from_blob(keys, payload["manifest"], blob)
        except IntegrityError as exc:
            raise PassphraseError(
                "The keys on this machine do not decrypt this recovery point (were they "
                "unlocked with the right machine's passphrase?)."
            ) from exc
        with self._tree_lock:
            self._tree_cache[key] = tree
            while len(self._tree_cache) > 4:
                self._tree_cache.popitem(last=False)
        return tree

    def browse(self, point: str, path: str = "", machine: str | None = None) -> dict:
        repo = self.repository(machine)
        keys = self.keys_for(machine)
        payload = self.resolve_point(repo, point)
        tree = self.load_tree(repo, keys, payload)
        try:
            entries = tree.ls(path or "")
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from exc
        kinds = {"f": "file", "d": "dir", "l": "symlink"}
        return {
            "point_id": payload["id"],
            "path": (path or "").strip("/"),
            "entries": [
                {
                    "name": e.name,
                    "type": kinds.get(e.type, e.type),
                    "size": e.size,
                    "mtime": e.mtime_ns / 1e9,  # unix seconds
                    **({"target": e.target} if e.is_symlink else {}),
                }
                for e in entries
            ],
        }

    # ------------------------------------------------------------------ restore
    def restore(
        self,
        *,
        point: str,
        target: str,
        paths: list[str] | None = None,
        on_conflict: str = "overwrite",
        machine: str | None = None,
        trigger: str = "adhoc",
        command_id: str | None = None,
        document: dict | None = None,
        progress=None,
        cancel: threading.Event | None = None,
    ) -> RestoreOutcome:
        repo = self.repository(machine)
        keys = self.keys_for(machine)
        payload = self.resolve_point(repo, point)
        tree = self.load_tree(repo, keys, payload)
        paths = [p.strip("/") for p in (paths or []) if p and p.strip("/")]
        if paths and not tree.select(paths):
            raise UsageError(
                "None of the requested paths are in this recovery point: " + ", ".join(paths)
            )
        target_path = Path(target).expanduser().absolute()
        if paths:
            # run_restore creates the selected folders, not the parents of a selected
            # file: make them here (plain folders; their attributes are not selected).
            for e in tree.select(paths):
                parent = e.path.rsplit("/", 1)[0] if "/" in e.path else ""
                if parent:
                    with contextlib.suppress(OSError):
                        (target_path / parent).mkdir(parents=True, exist_ok=True)
        self.apply_throttling(document)
        job_id = self._open_job(
            "restore",
            trigger,
            command_id=command_id,
            details={
                "point_id": payload["id"],
                "source_machine": machine or self.cfg.machine_name,
                "target": str(target_path),
                "paths": paths,
                "on_conflict": on_conflict,
            },
        )
        reporter = PortalReporter(self._progress_sender(job_id))

        def callback(p):
            if cancel is not None and cancel.is_set() and p.phase != "done":
                raise Cancelled("The agent service was stopped during the restore.")
            reporter(p)
            if progress is not None:
                progress(p)

        try:
            result = run_restore(
                repo,
                keys,
                payload["id"],
                target_path,
                paths or None,
                on_conflict,
                callback,
                limiter=None,
                tree=tree,
            )
        except BaseException as exc:
            reporter.close()
            if isinstance(exc, KeyboardInterrupt):
                message = "The restore was interrupted; completed files were kept."
            elif isinstance(exc, Cancelled | RestoreError):
                message = str(exc)
            elif isinstance(exc, OSError):
                message = f"The restore failed: {exc.strerror or exc}"
            else:
                message = f"The restore failed: {exc}"
            self.finish_job(job_id, {"state": "failed", "error": message})
            if isinstance(exc, KeyboardInterrupt):
                raise
            code = exit_code_for(exc, ExitCode.ERROR)
            if isinstance(exc, RestoreError):
                code = ExitCode.USAGE
            raise JobFailed(message, code, job_id) from exc
        reporter.close(
            {
                "phase": "done",
                "files_done": result.files_restored,
                "bytes_scanned": result.bytes_restored,
            }
        )
        failures = [(f.path, f.reason) for f in result.failures]
        warnings = [f"{p}: {r}" for p, r in failures] + list(result.warnings)
        details = {
            "stats": {
                "files": result.files_restored,
                "dirs": result.dirs_restored,
                "symlinks": result.symlinks_restored,
                "bytes": result.bytes_restored,
                "skipped": len(result.skipped),
                "renamed": len(result.renamed),
                "failed": len(failures),
            }
        }
        if failures and not result.files_restored and not result.symlinks_restored:
            body = {
                "state": "failed",
                "error": f"No file could be restored: {len(failures)} item(s) failed, e.g. "
                f"{failures[0][0]}: {failures[0][1]}",
                "details": details,
            }
        else:
            body = {
                "state": "completed_with_warnings" if warnings else "completed",
                "warnings": warnings[:MAX_WARNINGS_SENT],
                "details": details,
            }
        self.finish_job(job_id, body)
        return RestoreOutcome(
            job_id,
            result.files_restored,
            result.dirs_restored,
            result.symlinks_restored,
            result.bytes_restored,
            list(result.skipped),
            dict(result.renamed),
            failures,
            list(result.warnings),
            result.duration,
        )

    # ------------------------------------------------------------------ facts & keys
    def report_facts(self) -> None:
        self.portal.patch(
            "config/",
            {
                "agent_version": __version__,
                "os_name": os_description(),
                "time_zone": detect_timezone(),
                "unlocked_machines": self.cdir.unlocked_names(),
            },
        )

    def ensure_keys_uploaded(self) -> None:
        doc = self.cdir.load_keys_doc()
        if doc is None or doc.get("uploaded"):
            return
        self.portal.put("keys/", {"key_blob": doc["wrapped"]})
        self.cdir.mark_keys_uploaded()
        log.info("the wrapped keys are now stored in the vault")


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


# --------------------------------------------------------------------------- the service


class Service:
    """``backup-agent run``."""

    def __init__(
        self,
        agent: Agent,
        *,
        retry_interval: float | None = None,
        long_poll: bool = True,
        clock=time.time,
    ):
        self.agent = agent
        self.cdir = agent.cdir
        env_retry = os.environ.get("BACKUP_AGENT_RETRY_INTERVAL")
        if retry_interval is None:
            retry_interval = float(env_retry) if env_retry else 60.0
        self.retry_interval = retry_interval
        self.long_poll = long_poll
        self.clock = clock
        self.stop = threading.Event()
        self.wake = threading.Event()  # poll now (the long poll saw a command)
        self.tick = threading.Event()  # re-check the schedule now
        self.document, self.etag = self.cdir.load_document()
        self.portal_up: bool | None = None
        self.facts_reported = False
        self.exit_code = ExitCode.OK
        self.seen_commands: OrderedDict[str, None] = OrderedDict()
        self.jobs: list[threading.Thread] = []
        self.backup_running = threading.Event()
        self._state_lock = threading.Lock()
        self._missed_lock = threading.Lock()
        self.state = self.cdir.load_state()

    # ------------------------------------------------------------------ state
    def _save_state(self) -> None:
        with self._state_lock:
            self.cdir.save_state(self.state)

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        run_lock = self.cdir.lock(
            "run", "backup-agent run is already running with this configuration folder"
        )
        try:
            log.info(
                "backup-agent %s started for machine %s (vault %s, portal %s)",
                __version__,
                self.agent.cfg.machine_name,
                self.agent.cfg.vault_name,
                self.agent.cfg.portal_url,
            )
            if "last_run_handled" not in self.state:
                self.state["last_run_handled"] = iso(self.clock())
                self._save_state()
            if self.document is not None:
                self.agent.apply_throttling(self.document)
            threads = [threading.Thread(target=self._poll_loop, name="poll", daemon=True)]
            if self.long_poll:
                threads.append(threading.Thread(target=self._wait_loop, name="wait", daemon=True))
            for t in threads:
                t.start()
            while not self.stop.is_set():
                try:
                    self._schedule_tick()
                except Exception:  # noqa: BLE001 - keep the service alive
                    log.exception("scheduler error")
                self.tick.wait(1.0)
                self.tick.clear()
            log.info("stopping: waiting for running jobs to end")
            for t in list(self.jobs):
                t.join(timeout=60)
            return int(self.exit_code)
        finally:
            run_lock.release()

    def request_stop(self, code: ExitCode = ExitCode.OK) -> None:
        if code:
            self.exit_code = code
        self.stop.set()
        self.wake.set()
        self.tick.set()

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            log.info("signal %s received", signal.Signals(signum).name)
            self.request_stop(ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.OK)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # ------------------------------------------------------------------ polling
    def _interval(self) -> float:
        base = float((self.document or {}).get("poll_interval") or 60)
        base = max(5.0, base)
        return base * random.uniform(0.9, 1.1)

    def _poll_loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Unauthorized as exc:
                log.error("%s", exc.message)
                self.request_stop(ExitCode.NOT_REGISTERED)
                return
            except Exception:  # noqa: BLE001
                log.exception("poll failed")
            self.wake.wait(self._interval() if self.portal_up else min(30.0, self._interval()))
            self.wake.clear()

    def poll_once(self) -> None:
        headers = {"If-None-Match": self.etag} if self.etag and self.document else None
        try:
            response = self.agent.portal.request("GET", "config/", headers=headers, retries=1)
        except PortalUnreachable as exc:
            if self.portal_up is not False:
                log.warning("the portal is unreachable: %s", exc.message)
            self.portal_up = False
            return
        if self.portal_up is False:
            log.info("the portal answers again")
        self.portal_up = True
        if response.status_code == 200:
            document = response.json()
            self.etag = response.headers.get("ETag")

            def settings(d):
                return {k: v for k, v in (d or {}).items() if k != "commands"}

            changed = settings(document) != settings(self.document)
            self.document = document
            self.cdir.save_document(document, self.etag)
            self.agent.apply_throttling(document)
            if changed:
                policy = document.get("policy") or {}
                log.info(
                    "policy document updated: policy %s, next run %s",
                    policy.get("name") or "(none)",
                    (document.get("next_runs") or ["-"])[0],
                )
            self._dispatch(document.get("commands") or [])
        self._when_online()
        self.tick.set()

    def _when_online(self) -> None:
        if not self.facts_reported:
            try:
                self.agent.report_facts()
                self.facts_reported = True
            except AgentError as exc:
                log.warning("could not report version/OS/time zone: %s", exc)
        with contextlib.suppress(AgentError):
            self.agent.ensure_keys_uploaded()
        with contextlib.suppress(AgentError):
            self.agent.flush_outbox()
        self._report_missed()

    def _wait_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                response = self.agent.portal.request(
                    "GET",
                    "commands/wait/",
                    params={"timeout": 25},
                    timeout=40,
                    retries=0,
                )
                failures = 0
                if response.status_code == 200:
                    self.wake.set()
                    self.stop.wait(2.0)  # let the poller acknowledge before asking again
            except Unauthorized:
                self.stop.wait(30)
            except AgentError:
                failures += 1
                self.stop.wait(min(30.0, 2.0 * failures))
            except Exception:  # noqa: BLE001
                log.exception("long poll failed")
                self.stop.wait(10)

    # ------------------------------------------------------------------ commands
    def _dispatch(self, commands: list[dict]) -> None:
        for cmd in commands:
            cid = str(cmd.get("id"))
            if cid in self.seen_commands:
                continue
            self.seen_commands[cid] = None
            while len(self.seen_commands) > 500:
                self.seen_commands.popitem(last=False)
            try:
                self.agent.portal.post(f"commands/{cid}/ack/")
            except AgentError as exc:
                log.warning("could not acknowledge command %s: %s", cid, exc)
                continue
            log.info("command %s: %s %s", cid, cmd.get("kind"), cmd.get("payload") or {})
            self._start_job(f"command-{cmd.get('kind')}", self._run_command, cmd)

    def _start_job(self, name: str, target, *args) -> None:
        self.jobs = [t for t in self.jobs if t.is_alive()]
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self.jobs.append(t)
        t.start()

    def _run_command(self, cmd: dict) -> None:
        cid = str(cmd.get("id"))
        kind = cmd.get("kind")
        payload = cmd.get("payload") or {}
        try:
            if kind == "backup":
                outcome = self.agent.backup(
                    trigger="portal",
                    document=self.document,
                    command_id=cid,
                    retain_until=payload.get("retain_until"),
                    cancel=self.stop,
                )
                result = {"job_id": outcome.job_id, "point_id": outcome.point_id}
                if outcome.warnings:
                    result["warnings"] = len(outcome.warnings)
            elif kind == "restore":
                outcome = self.agent.restore(
                    point=str(payload.get("point_id") or "latest"),
                    target=str(payload.get("target") or ""),
                    paths=list(payload.get("paths") or []),
                    on_conflict=str(payload.get("on_conflict") or "overwrite"),
                    machine=payload.get("source_machine") or None,
                    trigger="portal",
                    command_id=cid,
                    document=self.document,
                    cancel=self.stop,
                )
                result = {
                    "job_id": outcome.job_id,
                    "files": outcome.files,
                    "bytes": outcome.bytes,
                    "failed": len(outcome.failures),
                }
            elif kind == "browse":
                result = self.agent.browse(
                    str(payload.get("point_id") or "latest"),
                    str(payload.get("path") or ""),
                    payload.get("source_machine") or None,
                )
            else:
                raise UsageError(f"This agent does not know the command {kind!r}.")
        except AgentError as exc:
            log.warning("command %s (%s) failed: %s", cid, kind, exc.message)
            self._command_result(cid, False, {"error": exc.message})
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("command %s (%s) failed", cid, kind)
            self._command_result(cid, False, {"error": f"The agent failed: {exc}"})
            return
        self._command_result(cid, True, result)

    def _command_result(self, cid: str, ok: bool, result: dict) -> None:
        try:
            self.agent.portal.post(f"commands/{cid}/result/", {"ok": ok, "result": result})
        except AgentError as exc:
            log.warning("could not report the result of command %s: %s", cid, exc)

    # ------------------------------------------------------------------ schedule
    def _schedule_tick(self) -> None:
        now = self.clock()
        document = self.document or {}
        runs = []
        if document.get("policy"):
            for value in document.get("next_runs") or []:
                with contextlib.suppress(ValueError, TypeError):
                    runs.append(parse_instant(value))
        runs.sort()
        handled = parse_instant(self.state.get("last_run_handled") or iso(now))
        due = [r for r in runs if handled < r <= now + 0.001]
        if due:
            newest = due[-1]
            if len(due) > 1:
                log.warning(
                    "%d scheduled run(s) passed while the agent was not running (%s); "
                    "running the latest one now",
                    len(due) - 1,
                    ", ".join(iso(r) for r in due[:-1]),
                )
            pending = self.state.get("pending_run")
            if pending and parse_instant(pending["scheduled_for"]) < newest:
                self._miss(pending, newest)
            self.state["pending_run"] = {
                "scheduled_for": iso(newest),
                "attempts": 0,
                "next_attempt": iso(now),
                "first_failure": None,
            }
            self.state["last_run_handled"] = iso(newest)
            self._save_state()
        pending = self.state.get("pending_run")
        if (
            pending
            and not self.backup_running.is_set()
            and parse_instant(pending["next_attempt"]) <= now + 0.001
        ):
            self.backup_running.set()
            self._start_job("scheduled-backup", self._run_scheduled, dict(pending))

    def _miss(self, pending: dict, superseded_by: float) -> None:
        first = pending.get("first_failure")
        reason = (
            f"The scheduled backup of {pending['scheduled_for']} did not run: the portal could "
            f"not be reached"
            + (f" from {first}" if first else "")
            + f" until the next scheduled backup at {iso(superseded_by)}"
            + (f" ({pending.get('last_error')})" if pending.get("last_error") else "")
            + "."
        )
        log.warning("%s", reason)
        self.state.setdefault("missed", []).append(
            {"scheduled_for": pending["scheduled_for"], "error": reason}
        )

    def _run_scheduled(self, pending: dict) -> None:
        scheduled_for = pending["scheduled_for"]
        try:
            now = self.clock()
            delay = max(0, int(now - parse_instant(scheduled_for)))
            details = {"scheduled_for": scheduled_for, "attempt": pending.get("attempts", 0) + 1}
            if delay >= 60 or pending.get("attempts"):
                details["delayed_seconds"] = delay
                if pending.get("first_failure"):
                    details["delayed_because"] = (
                        f"the portal could not be reached from {pending['first_failure']}"
                    )
            document = self.document
            if self.state.get("missed"):
                self._report_missed()  # first tell the portal what was missed, if it answers
            try:
                outcome = self.agent.backup(
                    trigger="scheduled", document=document, details=details, cancel=self.stop
                )
            except Busy as exc:
                log.warning("scheduled backup of %s postponed: %s", scheduled_for, exc.message)
                self._retry_pending(scheduled_for, exc.message)
                return
            except AgentError as exc:
                if exc.exit_code == ExitCode.PORTAL_UNREACHABLE and not self.stop.is_set():
                    log.warning(
                        "scheduled backup of %s could not run: %s; retrying in %.0f s",
                        scheduled_for,
                        exc.message,
                        self.retry_interval,
                    )
                    self._retry_pending(scheduled_for, exc.message)
                    return
                log.error("scheduled backup of %s failed: %s", scheduled_for, exc.message)
                self._clear_pending(scheduled_for)
                return
            except Exception:  # noqa: BLE001
                log.exception("scheduled backup of %s failed", scheduled_for)
                self._clear_pending(scheduled_for)
                return
            log.info("scheduled backup of %s done: point %s", scheduled_for, outcome.point_id)
            self._clear_pending(scheduled_for)
        finally:
            self.backup_running.clear()
            self.tick.set()

    def _retry_pending(self, scheduled_for: str, error: str) -> None:
        with self._state_lock:
            pending = self.state.get("pending_run")
            if pending and pending["scheduled_for"] == scheduled_for:
                pending["attempts"] = pending.get("attempts", 0) + 1
                pending["next_attempt"] = iso(self.clock() + self.retry_interval)
                pending["first_failure"] = pending.get("first_failure") or iso(self.clock())
                pending["last_error"] = error[:300]
        self._save_state()

    def _clear_pending(self, scheduled_for: str) -> None:
        with self._state_lock:
            pending = self.state.get("pending_run")
            if pending and pending["scheduled_for"] == scheduled_for:
                self.state["pending_run"] = None
        self._save_state()

    def _report_missed(self) -> None:
        if not self.state.get("missed"):
            return
        if not self._missed_lock.acquire(blocking=False):
            return  # another thread is reporting them right now
        try:
            self._report_missed_locked()
        finally:
            self._missed_lock.release()

    def _report_missed_locked(self) -> None:
        missed = list(self.state.get("missed") or [])
        if not missed:
            return
        left = []
        for entry in missed:
            try:
                job_id = self.agent._open_job(
                    "backup",
                    "scheduled",
                    details={"scheduled_for": entry["scheduled_for"], "missed": True},
                )
                self.agent.portal.post(
                    f"jobs/{job_id}/finish/", {"state": "failed", "error": entry["error"]}
                )
                log.info("reported the missed backup of %s", entry["scheduled_for"])
            except PortalUnreachable:
                left.append(entry)
            except AgentError as exc:
                log.warning("could not report a missed backup: %s", exc)
        with self._state_lock:
            current = self.state.get("missed") or []
            self.state["missed"] = left + [e for e in current if e not in missed]
        self._save_state()
