"""The ``backup-agent run`` service.

The jobs themselves (backup, restore, browse) are ``jobs.Agent``'s; ``Service`` is the
long-running part:

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
import logging
import os
import random
import signal
import threading
import time
from collections import OrderedDict

from . import __version__
from .errors import (
    AgentError,
    Busy,
    ExitCode,
    PortalUnreachable,
    Unauthorized,
    UsageError,
)
from .jobs import Agent, iso, parse_instant

__all__ = ["Service"]

log = logging.getLogger("backup_agent.service")


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
