"""Backup schedules: validation, plain-words summaries and the next run instants.

Schedule times are local wall-clock times in an IANA time zone. Unlike Azure Backup's MARS
agent, daylight saving time is handled explicitly (see `local_run_instant`).

Messages and summaries are translated when they are made (gettext, not lazy), so they follow
the language active at the call; the module stays free of the ORM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext, pgettext

DAILY = "daily"
WEEKLY = "weekly"
FREQUENCIES = (DAILY, WEEKLY)
MAX_TIMES_PER_DAY = 3
MAX_EVERY_WEEKS = 4
# English names (msgids): translate at use with `weekday_name`.
WEEKDAY_NAMES = (
    gettext_noop("Monday"),
    gettext_noop("Tuesday"),
    gettext_noop("Wednesday"),
    gettext_noop("Thursday"),
    gettext_noop("Friday"),
    gettext_noop("Saturday"),
    gettext_noop("Sunday"),
)
# The portal shows weeks Sunday first, as Azure does, so summaries list days in that order.
DISPLAY_WEEK_ORDER = (6, 0, 1, 2, 3, 4, 5)
# Valid keys that name the host's own configuration rather than a place.
_NON_PORTABLE_ZONE_NAMES = frozenset({"localtime", "posixrules"})


class PolicyValidationError(ValueError):
    """A schedule or retention policy the portal must refuse.

    `errors` maps a field name to messages that each say what to change.
    """

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = {field: list(messages) for field, messages in errors.items() if messages}
        super().__init__(" ".join(self.messages))

    @property
    def messages(self) -> list[str]:
        return [message for messages in self.errors.values() for message in messages]


@dataclass(frozen=True)
class Schedule:
    frequency: str
    times: tuple[time, ...]
    weekdays: tuple[int, ...] = ()
    every_weeks: int = 1
    anchor: date | None = None

    def runs_on(self, day: date) -> bool:
        """Whether `day` is a backup day (for an already validated schedule)."""
        if self.frequency == DAILY:
            return True
        if day.weekday() not in self.weekdays:
            return False
        if self.every_weeks == 1:
            return True
        weeks_from_anchor = (_monday_of(day) - _monday_of(self.anchor)).days // 7
        return weeks_from_anchor % self.every_weeks == 0


def _monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def join_words(words: list[str], conjunction: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c" in English; the separators are translated.

    `conjunction` is "and" or "or".
    """
    words = [str(word) for word in words]
    if len(words) <= 1:
        return "".join(words)
    # Translators: separates the items of a list but the last two ("a, b and c").
    separator = pgettext("list", ", ")
    if conjunction == "or":
        # Translators: separates the last two items of a list of alternatives ("a, b or c").
        last = pgettext("list", " or ")
    elif conjunction == "and":
        # Translators: separates the last two items of a list ("a, b and c").
        last = pgettext("list", " and ")
    else:
        raise ValueError(f"Unknown conjunction {conjunction!r}; use 'and' or 'or'.")
    return f"{separator.join(words[:-1])}{last}{words[-1]}"


def weekday_name(day: int) -> str:
    """The translated name of weekday `day` (0 is Monday)."""
    return _(WEEKDAY_NAMES[day])


def weekday_list(weekdays) -> str:
    """Day names in portal order, e.g. (2, 6) -> "Sunday and Wednesday"."""
    chosen = set(weekdays)
    return join_words([weekday_name(day) for day in DISPLAY_WEEK_ORDER if day in chosen])


def _times_list(times) -> str:
    return join_words([f"{t:%H:%M}" for t in times])


def parse_time_zone(name: str) -> ZoneInfo:
    message = _("Unknown time zone '%(name)s'. Use an IANA name such as Europe/Berlin.") % {
        "name": name
    }
    if not isinstance(name, str) or name in _NON_PORTABLE_ZONE_NAMES:
        raise PolicyValidationError({"time_zone": [message]})
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PolicyValidationError({"time_zone": [message]}) from None


def as_zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, str):
        return parse_time_zone(tz)
    if isinstance(tz, tzinfo):
        return tz
    raise TypeError(f"Expected an IANA time zone name or tzinfo, got {tz!r}")


def schedule_errors(schedule: Schedule) -> dict[str, list[str]]:
    """Every problem with `schedule`, by field; empty when the schedule is valid."""
    errors = {
        "frequency": _frequency_errors(schedule),
        "times": _times_errors(schedule),
        "weekdays": _weekday_errors(schedule),
        "every_weeks": _every_weeks_errors(schedule),
        "anchor": _anchor_errors(schedule),
    }
    return {field: messages for field, messages in errors.items() if messages}


def validate_schedule(schedule: Schedule) -> None:
    errors = schedule_errors(schedule)
    if errors:
        raise PolicyValidationError(errors)


def _frequency_errors(schedule: Schedule) -> list[str]:
    if schedule.frequency in FREQUENCIES:
        return []
    return [_("Choose a daily or weekly schedule.")]


def _add_a_time(frequency: str) -> str:
    if frequency == DAILY:
        return _("A daily schedule takes 1 to %(max)s times; add a time.")
    if frequency == WEEKLY:
        return _("A weekly schedule takes 1 to %(max)s times; add a time.")
    return _("A schedule takes 1 to %(max)s times; add a time.")


def _remove_times(frequency: str, extra: int) -> str:
    if frequency == DAILY:
        return ngettext(
            "A daily schedule takes 1 to %(max)s times; remove %(count)s time.",
            "A daily schedule takes 1 to %(max)s times; remove %(count)s times.",
            extra,
        )
    if frequency == WEEKLY:
        return ngettext(
            "A weekly schedule takes 1 to %(max)s times; remove %(count)s time.",
            "A weekly schedule takes 1 to %(max)s times; remove %(count)s times.",
            extra,
        )
    return ngettext(
        "A schedule takes 1 to %(max)s times; remove %(count)s time.",
        "A schedule takes 1 to %(max)s times; remove %(count)s times.",
        extra,
    )


def _times_errors(schedule: Schedule) -> list[str]:
    errors = []
    times = tuple(schedule.times)
    if not times:
        errors.append(_add_a_time(schedule.frequency) % {"max": MAX_TIMES_PER_DAY})
    elif len(times) > MAX_TIMES_PER_DAY:
        extra = len(times) - MAX_TIMES_PER_DAY
        message = _remove_times(schedule.frequency, extra)
        errors.append(message % {"max": MAX_TIMES_PER_DAY, "count": extra})
    valid = [t for t in times if isinstance(t, time) and not t.second and not t.microsecond]
    if len(valid) < len(times):
        errors.append(_("Times must be whole minutes between 00:00 and 23:59."))
    for t in valid:
        if t.tzinfo is not None:
            errors.append(
                _(
                    "Times are local to the schedule's time zone; remove the time zone "
                    "from %(time)s."
                )
                % {"time": f"{t:%H:%M}"}
            )
    repeated = sorted({t for t in valid if valid.count(t) > 1})
    if repeated:
        errors.append(
            _("Each time can be chosen once; remove the repeated %(times)s.")
            % {"times": _times_list(repeated)}
        )
    return errors


def _weekday_errors(schedule: Schedule) -> list[str]:
    weekdays = tuple(schedule.weekdays)
    if schedule.frequency == DAILY and weekdays:
        return [_("A daily schedule runs every day; clear the chosen days or make it weekly.")]
    if schedule.frequency != WEEKLY:
        return []
    if not weekdays:
        return [_("Choose at least one day for a weekly schedule.")]
    errors = []
    invalid = [day for day in weekdays if not is_whole_number(day) or not 0 <= day <= 6]
    if invalid:
        listed = join_words([repr(day) for day in invalid])
        errors.append(
            _("Days are numbered 0 (Monday) to 6 (Sunday); remove %(days)s.") % {"days": listed}
        )
    valid = [day for day in weekdays if is_whole_number(day) and 0 <= day <= 6]
    repeated = {day for day in valid if valid.count(day) > 1}
    if repeated:
        errors.append(
            _("Choose each day once; %(days)s is chosen twice.") % {"days": weekday_list(repeated)}
        )
    return errors


def _every_weeks_errors(schedule: Schedule) -> list[str]:
    every_weeks = schedule.every_weeks
    if not is_whole_number(every_weeks) or not 1 <= every_weeks <= MAX_EVERY_WEEKS:
        return [_("Repeat every 1 to %(max)s weeks.") % {"max": MAX_EVERY_WEEKS}]
    if schedule.frequency == DAILY and every_weeks != 1:
        return [_("A daily schedule runs every day; set repeat to 1 week or make it weekly.")]
    return []


def _anchor_errors(schedule: Schedule) -> list[str]:
    anchor = schedule.anchor
    if anchor is not None and (not isinstance(anchor, date) or isinstance(anchor, datetime)):
        return [_("The start date must be a calendar date, such as 2025-01-05.")]
    every_weeks = schedule.every_weeks
    alternating = is_whole_number(every_weeks) and 1 < every_weeks <= MAX_EVERY_WEEKS
    if anchor is None and schedule.frequency == WEEKLY and alternating:
        message = ngettext(
            "Repeating every %(count)s week needs a start date; choose the week the schedule "
            "starts in.",
            "Repeating every %(count)s weeks needs a start date; choose the week the schedule "
            "starts in.",
            every_weeks,
        )
        return [message % {"count": every_weeks}]
    return []


def describe_schedule(schedule: Schedule, time_zone: str | None = None) -> str:
    """Plain-words summary, e.g. "Every 2 weeks on Sunday and Wednesday at 01:00 and 09:30"."""
    values = {
        "times": _times_list(sorted(set(schedule.times))),
        "days": weekday_list(schedule.weekdays),
        "count": schedule.every_weeks,
    }
    if schedule.frequency == DAILY:
        summary = _("Every day at %(times)s") % values
    elif schedule.every_weeks == 1:
        summary = _("Every week on %(days)s at %(times)s") % values
    else:
        summary = (
            ngettext(
                "Every %(count)s week on %(days)s at %(times)s",
                "Every %(count)s weeks on %(days)s at %(times)s",
                schedule.every_weeks,
            )
            % values
        )
    if not time_zone:
        return summary
    # Translators: a schedule summary followed by the time zone its times are in.
    return _("%(summary)s (%(zone)s time)") % {"summary": summary, "zone": time_zone}


def local_run_instant(day: date, t: time, tz: str | tzinfo) -> datetime:
    """The UTC instant at which local wall time `t` on `day` happens in `tz`.

    A wall time skipped by a DST gap runs at the first instant after the gap; a wall time that
    occurs twice when clocks fall back runs at its first occurrence (fold=0).
    """
    zone = as_zone(tz)
    wall = datetime.combine(day, t.replace(tzinfo=None, fold=0))
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: tzinfo) -> datetime:
    # Read with the offsets before and after the transition, `wall` maps to two instants that
    # bracket the transition; bisect on whole seconds (tzdata transitions are whole seconds).
    readings = [wall.replace(tzinfo=zone, fold=fold).timestamp() for fold in (0, 1)]
    before, after = math.floor(min(readings)), math.ceil(max(readings))
    offset_before = datetime.fromtimestamp(before, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_before:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def next_runs(schedule: Schedule, tz: str | tzinfo, after: datetime, count: int) -> list[datetime]:
    """The next `count` run instants strictly after `after`, as ascending aware UTC datetimes."""
    validate_schedule(schedule)
    zone = as_zone(tz)
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("`after` must be a timezone-aware datetime.")
    if count < 0:
        raise ValueError("`count` must not be negative.")
    after = after.astimezone(UTC)
    times = sorted({t.replace(fold=0) for t in schedule.times})
    # Starting a day early is cheap and keeps this correct however a zone's transitions line up
    # with midnight.
    day = after.astimezone(zone).date() - timedelta(days=1)
    runs: list[datetime] = []
    while len(runs) < count:
        if schedule.runs_on(day):
            for t in times:
                instant = local_run_instant(day, t, zone)
                # Run instants never decrease with wall time, so only equal neighbours (times
                # collapsed into one gap) can repeat.
                if instant > after and (not runs or instant > runs[-1]):
                    runs.append(instant)
                    if len(runs) == count:
                        break
        day += timedelta(days=1)
    return runs
