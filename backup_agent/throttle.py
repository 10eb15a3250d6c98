"""Network bandwidth throttling: a token bucket with work-hours and off-hours rates.

Rates are in bits per second and must lie between 512 Kbps and 1,023 Mbps (the range
the portal offers). Work hours are given as weekdays (0 = Monday ... 6 = Sunday) and a
local start/end time; outside them the off-hours rate applies. The active rate is
re-evaluated at least once a second, so a long transfer switches rate when the clock
crosses the boundary.

``consume(n)`` blocks the calling thread until ``n`` bytes may be sent. The bucket
starts empty and holds at most ``burst_seconds`` of tokens, so the average rate over
any 10 s window is within a few percent of the set rate. ``UNTHROTTLED`` (or ``None``)
is a no-op.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = [
    "MIN_RATE_BPS",
    "MAX_RATE_BPS",
    "ThrottleSchedule",
    "BandwidthLimiter",
    "Unthrottled",
    "UNTHROTTLED",
    "ThrottledReader",
    "validate_rate",
]

MIN_RATE_BPS = 512 * 1000  # 512 Kbps
MAX_RATE_BPS = 1023 * 1000 * 1000  # 1,023 Mbps


def validate_rate(bps: int, what: str = "rate") -> int:
    if not isinstance(bps, int) or isinstance(bps, bool):
        raise ValueError(f"The {what} must be a whole number of bits per second.")
    if not MIN_RATE_BPS <= bps <= MAX_RATE_BPS:
        raise ValueError(f"The {what} must be between 512 Kbps and 1,023 Mbps (got {bps:,} bps).")
    return bps


@dataclass(frozen=True)
class ThrottleSchedule:
    work_rate_bps: int
    off_rate_bps: int
    work_days: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    work_start: _dt.time = _dt.time(9, 0)
    work_end: _dt.time = _dt.time(17, 0)

    def __post_init__(self) -> None:
        validate_rate(self.work_rate_bps, "work-hours rate")
        validate_rate(self.off_rate_bps, "off-hours rate")
        days = frozenset(self.work_days)
        if not days <= set(range(7)):
            raise ValueError("Work days must be numbers 0 (Monday) to 6 (Sunday).")
        object.__setattr__(self, "work_days", days)
        if self.work_start >= self.work_end:
            raise ValueError("Work hours must start before they end.")

    def rate_at(self, now: _dt.datetime) -> int:
        """Rate in bits/s in force at local time ``now``."""
        if now.weekday() in self.work_days and self.work_start <= now.time() < self.work_end:
            return self.work_rate_bps
        return self.off_rate_bps


class Unthrottled:
    """No-op limiter."""

    enabled = False

    def consume(self, nbytes: int) -> None:
        return None

    def current_rate_bps(self) -> int | None:
        return None


UNTHROTTLED = Unthrottled()


class BandwidthLimiter:
    """Thread-safe token bucket following a ``ThrottleSchedule``.

    ``now`` (local wall clock, for the schedule), ``monotonic`` and ``sleep`` can be
    injected for tests.
    """

    enabled = True

    def __init__(
        self,
        schedule: ThrottleSchedule,
        *,
        now: Callable[[], _dt.datetime] = _dt.datetime.now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        burst_seconds: float = 0.25,
    ):
        self.schedule = schedule
        self._now = now
        self._mono = monotonic
        self._sleep = sleep
        self._burst = burst_seconds
        self._lock = threading.Lock()
        self._tokens = 0.0  # bytes; may go negative (debt) for large sends
        self._last = monotonic()

    def current_rate_bps(self) -> int:
        return self.schedule.rate_at(self._now())

    def _refill(self, rate_Bps: float) -> None:
        t = self._mono()
        elapsed = max(0.0, t - self._last)
        self._last = t
        self._tokens = min(self._tokens + elapsed * rate_Bps, rate_Bps * self._burst)

    def consume(self, nbytes: int) -> None:
        """Block until ``nbytes`` may be transferred."""
        if nbytes <= 0:
            return
        with self._lock:
            rate = self.current_rate_bps() / 8.0
            self._refill(rate)
            self._tokens -= nbytes
            # Pay off the debt, re-reading the schedule at least once a second.
            while self._tokens < -0.5:  # (half a byte: immune to float rounding)
                rate = self.current_rate_bps() / 8.0
                wait = min(1.0, -self._tokens / rate)
                self._sleep(wait)
                t = self._mono()
                # sleep() never returns early; crediting at least ``wait`` also avoids a
                # float stall when a tiny wait does not move a large clock value
                self._tokens += max(t - self._last, wait) * rate
                self._last = max(t, self._last + wait)


class ThrottledReader:
    """File-like wrapper that throttles ``read`` (for streaming uploads)."""

    def __init__(self, raw: BinaryIO, limiter, block: int = 256 * 1024):
        self._raw = raw
        self._limiter = limiter
        self._block = block

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while block := self.read(self._block):
                parts.append(block)
            return b"".join(parts)
        data = self._raw.read(min(n, self._block))
        if data:
            self._limiter.consume(len(data))
        return data

    def __iter__(self):
        while block := self.read(self._block):
            yield block

    def readable(self) -> bool:
        return True
