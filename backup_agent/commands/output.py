"""What the commands print: plain lines, notes on stderr, local times, tables."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from .parsing import DAY_NAMES


def out(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def local_time(value) -> str:
    """An ISO string or unix time as local 'YYYY-MM-DD HH:MM'."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, int | float):
            dt = datetime.fromtimestamp(value, UTC)
        else:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
        return dt.astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, TypeError, OSError):
        return str(value)


def table(rows: list[list[str]], headers: list[str]) -> str:
    cells = [headers] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def throttling_text(t: dict | None) -> str:
    if not t or not t.get("enabled"):
        return "off"
    days = ",".join(DAY_NAMES[d] for d in t.get("work_days") or [])
    work = (t.get("work_hours_kbps") or 0) * 1000
    off = (t.get("off_hours_kbps") or 0) * 1000
    return (
        f"{rate_text(work)} on {days or 'no days'} {t.get('work_start')}-{t.get('work_end')}, "
        f"{rate_text(off)} otherwise"
    )


def rate_text(bps: int) -> str:
    if bps >= 1_000_000:
        return f"{bps / 1e6:g} Mbps"
    return f"{bps / 1e3:g} Kbps"
