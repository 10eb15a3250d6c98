"""Command-line values: bandwidths, week days, work hours, retention dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from datetime import time as dtime

from ..errors import UsageError
from ..throttle import MAX_RATE_BPS, MIN_RATE_BPS
from ..throttle import validate_rate as _validate_rate

DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_rate(text: str) -> int:
    """'512kbps', '1mbps', '100 Mbps', '1,023 Mbps', '2048' (Kbps) -> bits per second."""
    m = re.fullmatch(
        r"\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([kmg])?\s*(?:bps|bit/s|b/s|bits?)?\s*",
        str(text),
        re.IGNORECASE,
    )
    if not m:
        raise UsageError(f"{text!r} is not a bandwidth; write it like 512kbps, 10mbps or 1023mbps.")
    number = float(m.group(1).replace(",", ""))
    unit = (m.group(2) or "k").lower()
    bps = int(round(number * {"k": 1e3, "m": 1e6, "g": 1e9}[unit]))
    try:
        return _validate_rate(bps, "bandwidth")
    except ValueError as exc:
        raise UsageError(
            f"{text.strip()} is outside the allowed range: bandwidth goes from 512 Kbps to "
            f"1,023 Mbps ({MIN_RATE_BPS // 1000:,} to {MAX_RATE_BPS // 1000:,} Kbps)."
        ) from exc


def parse_days(text: str) -> list[int]:
    """'mon-fri', 'mon,wed,fri', 'sat-sun', 'all', '0-4' -> sorted weekday numbers."""
    text = text.strip().lower()
    if text in ("all", "every", "daily", "mon-sun"):
        return list(range(7))
    if text in ("none", ""):
        return []

    def day(token: str) -> int:
        token = token.strip()
        if token.isdigit() and 0 <= int(token) <= 6:
            return int(token)
        for i, name in enumerate(DAY_NAMES):
            if token[:3] == name and len(token) >= 3:
                return i
        raise UsageError(f"{token!r} is not a day; use mon, tue, wed, thu, fri, sat, sun.")

    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            start, end = day(a), day(b)
            i = start
            while True:
                days.add(i)
                if i == end:
                    break
                i = (i + 1) % 7
        else:
            days.add(day(part))
    return sorted(days)


def parse_hours(text: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m:
        raise UsageError(f"{text!r} is not a span of hours; write it like 09:00-17:00.")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    try:
        start, end = dtime(h1, m1), dtime(h2, m2)
    except ValueError as exc:
        raise UsageError(f"{text!r}: {exc}.") from exc
    if start >= end:
        raise UsageError("Work hours must start before they end (e.g. 09:00-17:00).")
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def parse_retain_until(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            dt = datetime.combine(datetime.fromisoformat(text).date(), dtime(23, 59, 59))
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"--retain-until {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from exc
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    if dt <= datetime.now(UTC):
        raise UsageError("--retain-until must be in the future.")
    return dt.isoformat()
