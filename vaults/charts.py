"""Small SVG charts as plain geometry: these functions compute, the templates only draw.

No ORM, no templates, no locale: callers pass labels already formatted. Coordinates are
in the SVG's user units (the chart scales to its container through its viewBox).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NICE_STEPS = (1, 2, 2.5, 5, 10)
BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


@dataclass(frozen=True)
class Box:
    """The plot area inside the chart's margins."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def label_x(self) -> float:
        """Where y-axis labels end (text-anchor: end)."""
        return self.left - 6

    @property
    def axis_y(self) -> float:
        """The baseline of x-axis labels."""
        return self.bottom + 15


@dataclass(frozen=True)
class Tick:
    value: float
    y: float
    label: str


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Column:
    label: str
    show_label: bool
    x: float
    width: float
    total: int
    segments: tuple[Segment, ...]
    cells: tuple[int, ...]  # the values in series order, for the data table

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    box: Box
    ticks: tuple[Tick, ...]
    columns: tuple[Column, ...]
    series: tuple[tuple[str, str], ...]
    total: int


@dataclass(frozen=True)
class Point:
    label: str
    show_label: bool
    x: float
    y: float | None
    value: float | None
    text: str
    band_x: float
    band_width: float


@dataclass(frozen=True)
class AreaChart:
    width: int
    height: int
    box: Box
    ticks: tuple[Tick, ...]
    points: tuple[Point, ...]
    line: str
    area: str
    last: Point | None = None
    known: int = 0
    extra: dict = field(default_factory=dict)


def nice_step(raw: float, steps: tuple = NICE_STEPS) -> float:
    """The smallest of ``steps`` × 10ⁿ at least ``raw`` (``raw`` > 0)."""
    if raw <= 0:
        raise ValueError("raw must be positive")
    exponent = math.floor(math.log10(raw))
    for step in steps:
        candidate = step * 10.0**exponent
        if candidate >= raw * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def axis(maximum: float, count: int = 4, *, integer: bool = False) -> tuple[float, float]:
    """(top, step) of a y axis from 0 with about ``count`` nice intervals covering ``maximum``."""
    if maximum <= 0:
        return (float(count), 1.0) if integer else (1.0, 1.0 / count)
    raw = maximum / count
    steps = (1, 2, 5, 10) if integer else NICE_STEPS
    step = 1.0 if integer and raw <= 1 else nice_step(raw, steps)
    top = step * math.ceil(maximum / step - 1e-9)
    return max(top, step), step


def byte_unit(value: float) -> int:
    """The binary unit (1024ⁿ) in which ``value`` reads between 1 and 1023."""
    power = 0
    while value >= 1024 and power < len(BYTE_UNITS) - 1:
        value /= 1024
        power += 1
    return 1024**power


def format_bytes(value: float, unit: int | None = None) -> str:
    if not value:
        return "0"
    unit = unit or byte_unit(value)
    power = round(math.log(unit, 1024))
    number = value / unit
    text = f"{number:.1f}".rstrip("0").rstrip(".") if number % 1 else f"{number:.0f}"
    return f"{text} {BYTE_UNITS[power]}"


def format_count(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _every(count: int, max_labels: int) -> int:
    return max(1, math.ceil(count / max_labels))


def _ticks(box: Box, top: float, step: float, fmt) -> tuple[Tick, ...]:
    ticks = []
    intervals = round(top / step)
    for i in range(intervals + 1):
        value = step * i
        ticks.append(Tick(value, round(box.bottom - box.height * value / top, 2), fmt(value)))
    return tuple(ticks)


def stacked_bars(
    labels: list[str],
    series: list[tuple[str, str]],
    rows: list[dict],
    *,
    width: int = 480,
    height: int = 180,
    margin: tuple[int, int, int, int] = (8, 8, 22, 32),
    gap: float = 0.3,
    max_labels: int = 8,
) -> BarChart:
    """Columns of stacked segments, bottom to top in ``series`` order.

    ``series`` is [(key, label)], ``rows`` one {key: count} per label.
    """
    if len(labels) != len(rows):
        raise ValueError("one row per label")
    top_margin, right, bottom, left = margin
    box = Box(left, top_margin, width - right, height - bottom)
    totals = [sum(int(row.get(key, 0)) for key, _ in series) for row in rows]
    top, step = axis(max(totals, default=0), integer=True)
    slot = box.width / max(len(labels), 1)
    bar = slot * (1 - gap)
    every = _every(len(labels), max_labels)
    columns = []
    for i, (label, row, total) in enumerate(zip(labels, rows, totals, strict=True)):
        y = box.bottom
        segments = []
        for key, name in series:
            value = int(row.get(key, 0))
            if value <= 0:
                continue
            h = box.height * value / top
            y -= h
            segments.append(Segment(key, name, value, round(y, 2), round(h, 2)))
        columns.append(
            Column(
                label=label,
                show_label=(len(labels) - 1 - i) % every == 0,
                x=round(box.left + slot * i + (slot - bar) / 2, 2),
                width=round(bar, 2),
                total=total,
                segments=tuple(segments),
                cells=tuple(int(row.get(key, 0)) for key, _ in series),
            )
        )
    return BarChart(
        width=width,
        height=height,
        box=box,
        ticks=_ticks(box, top, step, format_count),
        columns=tuple(columns),
        series=tuple(series),
        total=sum(totals),
    )


def area_chart(
    labels: list[str],
    values: list[float | None],
    *,
    width: int = 480,
    height: int = 180,
    margin: tuple[int, int, int, int] = (8, 8, 22, 56),
    max_labels: int = 6,
    bytes_axis: bool = True,
) -> AreaChart:
    """A line with the area under it; ``None`` values (no data yet) are not drawn."""
    if len(labels) != len(values):
        raise ValueError("one value per label")
    top_margin, right, bottom, left = margin
    box = Box(left, top_margin, width - right, height - bottom)
    known = [v for v in values if v is not None]
    peak = max(known, default=0)
    if bytes_axis:
        unit = byte_unit(peak) if peak else 1024**3
        top, step = axis(peak / unit if peak else 0)
        top, step = top * unit, step * unit
        fmt = lambda v: format_bytes(v, unit)  # noqa: E731
        text = format_bytes
    else:
        top, step = axis(peak)
        fmt = text = format_count
    n = len(labels)
    slot = box.width / max(n - 1, 1)
    every = _every(n, max_labels)
    points = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = box.left + (slot * i if n > 1 else box.width / 2)
        y = None if value is None else round(box.bottom - box.height * value / top, 2)
        band = slot if n > 1 else box.width
        points.append(
            Point(
                label=label,
                show_label=(n - 1 - i) % every == 0,
                x=round(x, 2),
                y=y,
                value=value,
                text="" if value is None else text(value),
                band_x=round(max(box.left, x - band / 2), 2),
                band_width=round(min(band, box.right - max(box.left, x - band / 2)), 2),
            )
        )
    drawn = [p for p in points if p.y is not None]
    line = area = ""
    if len(drawn) >= 2:
        line = "M" + " L".join(f"{p.x},{p.y}" for p in drawn)
        area = f"{line} L{drawn[-1].x},{box.bottom} L{drawn[0].x},{box.bottom} Z"
    return AreaChart(
        width=width,
        height=height,
        box=box,
        ticks=_ticks(box, top, step, fmt),
        points=tuple(points),
        line=line,
        area=area,
        last=drawn[-1] if drawn else None,
        known=len(drawn),
    )
