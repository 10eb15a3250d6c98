"""Progress: a terminal bar, and the throttled reporter that keeps the portal's job live.

``TerminalProgress`` draws one line on a terminal (files, bytes, rate, ETA) and stays
quiet elsewhere. ``PortalReporter`` sends the newest snapshot to
``POST jobs/<id>/progress/`` from its own thread, at most ``max_per_second`` times a
second (2 by default) and at least every ``heartbeat`` seconds, so the engine never
waits on the network and the portal's watchdog never mistakes a long quiet phase for a
dead agent.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["TerminalProgress", "PortalReporter", "human_bytes", "human_duration", "snapshot"]

log = logging.getLogger("backup_agent.progress")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def snapshot(p) -> dict:
    """A BackupProgress/RestoreProgress as the portal's progress fields (whole numbers)."""
    out = {"phase": p.phase}
    files_total = getattr(p, "files_total", None)
    if files_total is not None:
        out["files_total"] = int(files_total)
    out["files_done"] = int(getattr(p, "files_done", 0) or 0)
    bytes_total = getattr(p, "bytes_total", None)
    if bytes_total is not None:
        out["bytes_total"] = int(bytes_total)
    if hasattr(p, "bytes_scanned"):  # backup
        out["bytes_scanned"] = int(p.bytes_scanned)
        out["bytes_new"] = int(p.bytes_new)
        out["bytes_uploaded"] = int(p.bytes_uploaded)
    else:  # restore: bytes written so far
        out["bytes_scanned"] = int(getattr(p, "bytes_done", 0) or 0)
    out["rate_bps"] = int(max(0.0, getattr(p, "rate_bps", 0.0) or 0.0))
    eta = getattr(p, "eta_seconds", None)
    if eta is not None and eta == eta and eta >= 0:
        out["eta_seconds"] = int(min(eta, 2**31 - 1))
    return out


class TerminalProgress:
    """One redrawn line on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, stream=None, *, enabled: bool | None = None, min_interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.min_interval = min_interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if p.phase not in ("done",) and now - self._last < self.min_interval:
            return
        self._last = now
        self.stream.write("\r" + self.line(p) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def line(self, p) -> str:
        total = getattr(p, "bytes_total", 0) or 0
        done = getattr(p, "bytes_scanned", None)
        if done is None:
            done = getattr(p, "bytes_done", 0)
        width = max(10, min(30, shutil.get_terminal_size((80, 20)).columns - 70))
        frac = (done / total) if total else (1.0 if p.phase == "done" else 0.0)
        frac = max(0.0, min(1.0, frac))
        filled = int(frac * width)
        bar = "#" * filled + "-" * (width - filled)
        files = f"{getattr(p, 'files_done', 0):,}/{getattr(p, 'files_total', 0):,} files"
        size = f"{human_bytes(done)}/{human_bytes(total)}"
        rate = f"{human_bytes(getattr(p, 'rate_bps', 0) or 0)}/s"
        eta = human_duration(getattr(p, "eta_seconds", None))
        phase = p.phase[:10]
        return f"{phase:<10} [{bar}] {frac * 100:5.1f}%  {files}  {size}  {rate}  ETA {eta}"

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class PortalReporter:
    """Sends progress snapshots for one job from a background thread."""

    def __init__(
        self,
        send: Callable[[dict], None],
        *,
        max_per_second: float = 2.0,
        heartbeat: float = 60.0,
    ):
        self._send = send
        self._interval = 1.0 / max_per_second
        self._heartbeat = heartbeat
        self._cond = threading.Condition()
        self._pending: dict | None = None
        self._last_sent: dict | None = None
        self._stop = False
        self.sent = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="progress-reporter", daemon=True)
        self._thread.start()

    def update(self, values: dict) -> None:
        with self._cond:
            self._pending = dict(values)
            self._cond.notify()

    def __call__(self, p) -> None:
        self.update(snapshot(p))

    def _run(self) -> None:
        last = 0.0
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    if not self._cond.wait(timeout=self._heartbeat) and self._last_sent:
                        self._pending = dict(self._last_sent)  # heartbeat
                if self._pending is None and self._stop:
                    return
                wait = self._interval - (time.monotonic() - last)
                if wait > 0 and not self._stop:
                    self._cond.wait(timeout=wait)
                    continue
                values, self._pending = self._pending, None
            last = time.monotonic()
            try:
                self._send(values)
                self.sent += 1
                self._last_sent = values
            except Exception as exc:  # noqa: BLE001 - progress is best effort
                self.failures += 1
                log.warning("progress report failed: %s", exc)

    def close(self, final: dict | None = None, timeout: float = 10.0) -> None:
        """Send ``final`` (or what is pending) and stop."""
        with self._cond:
            if final is not None:
                self._pending = dict(final)
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
