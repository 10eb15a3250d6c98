"""What the jobs share: their outcomes and errors, the policy's items and the limiter."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo

from ..errors import AgentError, ExitCode
from ..scanner import Exclusion
from ..throttle import BandwidthLimiter, ThrottleSchedule

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
