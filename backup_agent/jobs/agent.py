"""``Agent``: a registered machine bound to the portal and blob storage.

It runs one job at a time: opens the job, streams progress, commits the recovery point and
finishes the job (``completed``, ``completed_with_warnings`` with the warnings, or
``failed`` with the reason); job ends the portal cannot be told yet wait in an outbox.
The backup methods live in ``jobs.backup``, the browse and restore ones in ``jobs.restore``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from .. import __version__
from ..api import BlobClient, PortalClient
from ..config import AgentConfig, ConfigDir
from ..errors import PassphraseError, PortalRefused, PortalUnreachable
from ..platform import detect_timezone, os_description
from ..remote import HttpRepository
from ..tree import Tree
from .backup import BackupJobs
from .common import SwitchableLimiter, limiter_from_document
from .restore import RestoreJobs

log = logging.getLogger("backup_agent.service")


class Agent(BackupJobs, RestoreJobs):
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
        from ..config import write_private

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
