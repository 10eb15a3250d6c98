"""Browse and restore jobs: recovery points, their file lists, and files back to disk."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from ..errors import AgentError, ExitCode, PassphraseError, UsageError, exit_code_for
from ..progress import PortalReporter
from ..remote import HttpRepository
from ..repository import NotFound
from ..restore import RestoreError, run_restore
from ..tree import Tree
from .common import MAX_WARNINGS_SENT, Cancelled, JobFailed, RestoreOutcome

log = logging.getLogger("backup_agent.service")


class RestoreJobs:
    """The recovery point, browse and restore methods of ``Agent``."""

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
        from ..crypto import IntegrityError

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
