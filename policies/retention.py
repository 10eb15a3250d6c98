"""Retention policies: which recovery points a policy keeps, until when, and what it may hold.

Every rule is a property of a single point (its local calendar date and time), so a verdict never
depends on which other points exist, except that the newest point is always kept.

Messages and descriptions are translated when they are made (gettext, not lazy), so they follow
the language active at the call; the module stays free of the ORM.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext, pgettext, pgettext_lazy

from policies.schedule import (
    DAILY,
    DISPLAY_WEEK_ORDER,
    WEEKLY,
    PolicyValidationError,
    Schedule,
    as_zone,
    is_whole_number,
    join_words,
    local_run_instant,
    schedule_errors,
    weekday_list,
    weekday_name,
)

LAST = "last"
WEEKS_OF_MONTH = ("first", "second", "third", "fourth", LAST)
# English names (msgids), index 1..12: translate at use.
MONTH_NAMES = (
    "",
    gettext_noop("January"),
    gettext_noop("February"),
    gettext_noop("March"),
    gettext_noop("April"),
    gettext_noop("May"),
    gettext_noop("June"),
    gettext_noop("July"),
    gettext_noop("August"),
    gettext_noop("September"),
    gettext_noop("October"),
    gettext_noop("November"),
    gettext_noop("December"),
)
# How the weeks of the month read in a selection such as "the first and last Saturday".
WEEK_WORDS = {
    "first": pgettext_lazy("week of the month", "first"),
    "second": pgettext_lazy("week of the month", "second"),
    "third": pgettext_lazy("week of the month", "third"),
    "fourth": pgettext_lazy("week of the month", "fourth"),
    LAST: pgettext_lazy("week of the month", "last"),
}
# Noun phrases naming a rule in messages, e.g. "Keep {weekly backups} for 1 to 5163 weeks".
RULE_BACKUPS = {
    "daily": pgettext_lazy("retention rule", "daily backups"),
    "weekly": pgettext_lazy("retention rule", "weekly backups"),
    "monthly": pgettext_lazy("retention rule", "monthly backups"),
    "yearly": pgettext_lazy("retention rule", "yearly backups"),
}
RULE_RETENTION = {
    "daily": pgettext_lazy("retention rule", "daily retention"),
    "weekly": pgettext_lazy("retention rule", "weekly retention"),
    "monthly": pgettext_lazy("retention rule", "monthly retention"),
    "yearly": pgettext_lazy("retention rule", "yearly retention"),
}
RULE_NAMES = ("daily", "weekly", "monthly", "yearly")
LIMITS = {"daily": (7, 9999), "weekly": (1, 5163), "monthly": (1, 1188), "yearly": (1, 99)}
SECURITY_MINIMUMS = {"daily": 7, "weekly": 4, "monthly": 3, "yearly": 1}
MAX_POINTS_PER_MACHINE = 9999
POINT_KINDS = ("scheduled", "adhoc", "offline")
DURATION_FIELDS = {"daily": "days", "weekly": "weeks", "monthly": "months", "yearly": "years"}


@dataclass(frozen=True)
class DailyRule:
    days: int


@dataclass(frozen=True)
class WeeklyRule:
    weekdays: tuple[int, ...]
    weeks: int


@dataclass(frozen=True)
class MonthlyRule:
    months: int
    days_of_month: tuple[int | str, ...] = ()
    weeks_of_month: tuple[str, ...] = ()
    weekdays: tuple[int, ...] = ()


@dataclass(frozen=True)
class YearlyRule:
    years: int
    months: tuple[int, ...]
    days_of_month: tuple[int | str, ...] = ()
    weeks_of_month: tuple[str, ...] = ()
    weekdays: tuple[int, ...] = ()


@dataclass(frozen=True)
class RetentionPolicy:
    daily: DailyRule | None = None
    weekly: WeeklyRule | None = None
    monthly: MonthlyRule | None = None
    yearly: YearlyRule | None = None

    def rules(self) -> list[tuple[str, object]]:
        return [(name, getattr(self, name)) for name in RULE_NAMES if getattr(self, name)]


@dataclass(frozen=True)
class Point:
    id: str
    time: datetime
    retain_until: datetime | None = None
    kind: str = "scheduled"

    def __post_init__(self):
        if self.kind not in POINT_KINDS:
            raise ValueError(f"Unknown recovery point kind {self.kind!r}.")
        if self.time.utcoffset() is None:
            raise ValueError(f"Point {self.id}: time must be timezone-aware.")
        if self.retain_until is not None:
            if self.kind != "adhoc":
                raise ValueError(f"Point {self.id}: only ad-hoc points carry retain_until.")
            if self.retain_until.utcoffset() is None:
                raise ValueError(f"Point {self.id}: retain_until must be timezone-aware.")


@dataclass(frozen=True)
class Verdict:
    keep: bool
    rules: tuple[str, ...]
    expires_at: datetime | None


def duration(name: str, rule) -> int:
    return getattr(rule, DURATION_FIELDS[name])


def _duration_text(name: str, count: int) -> str:
    """How long a rule keeps points, e.g. "1 week", "1,188 months"."""
    if name == "daily":
        text = ngettext("%(count)s day", "%(count)s days", count)
    elif name == "weekly":
        text = ngettext("%(count)s week", "%(count)s weeks", count)
    elif name == "monthly":
        text = ngettext("%(count)s month", "%(count)s months", count)
    else:
        text = ngettext("%(count)s year", "%(count)s years", count)
    return text % {"count": f"{count:,}"}


def _duration_range(name: str, low: int, high: int) -> str:
    """The lengths a rule allows, e.g. "7 to 9999 days"."""
    if name == "daily":
        text = ngettext("%(low)s to %(high)s day", "%(low)s to %(high)s days", high)
    elif name == "weekly":
        text = ngettext("%(low)s to %(high)s week", "%(low)s to %(high)s weeks", high)
    elif name == "monthly":
        text = ngettext("%(low)s to %(high)s month", "%(low)s to %(high)s months", high)
    else:
        text = ngettext("%(low)s to %(high)s year", "%(low)s to %(high)s years", high)
    return text % {"low": low, "high": high}


def _whole_number_error(name: str) -> str:
    if name == "daily":
        return _("Keep daily backups for a whole number of days.")
    if name == "weekly":
        return _("Keep weekly backups for a whole number of weeks.")
    if name == "monthly":
        return _("Keep monthly backups for a whole number of months.")
    return _("Keep yearly backups for a whole number of years.")


# --- calendar matching -------------------------------------------------------------------------


def _uses_weeks(rule) -> bool:
    return not rule.days_of_month


def _matches(rule, month: int, day_of_month: int, month_length: int, weekday: int) -> bool:
    """Whether a monthly/yearly rule selects this date (described by its calendar facts)."""
    if isinstance(rule, YearlyRule) and month not in rule.months:
        return False
    if not _uses_weeks(rule):
        return any(
            d == day_of_month or (d == LAST and day_of_month == month_length)
            for d in rule.days_of_month
        )
    if weekday not in rule.weekdays:
        return False
    return any(
        day_of_month > month_length - 7 if week == LAST else (day_of_month - 1) // 7 == index
        for index, week in enumerate(WEEKS_OF_MONTH)
        if week in rule.weeks_of_month
    )


def _matches_date(rule, day: date) -> bool:
    month_length = calendar.monthrange(day.year, day.month)[1]
    return _matches(rule, day.month, day.day, month_length, day.weekday())


def _add_months(wall: datetime, months: int) -> datetime:
    year, month = divmod(wall.month - 1 + months, 12)
    year, month = wall.year + year, month + 1
    return wall.replace(
        year=year, month=month, day=min(wall.day, calendar.monthrange(year, month)[1])
    )


def _rule_expiries(point_time: datetime, policy: RetentionPolicy, zone: tzinfo) -> dict:
    """Expiry instant per rule that selects the point, counted on the local calendar."""
    wall = point_time.astimezone(zone).replace(tzinfo=None)
    walls = {}
    if policy.daily:
        walls["daily"] = wall + timedelta(days=policy.daily.days)
    if policy.weekly and wall.weekday() in policy.weekly.weekdays:
        walls["weekly"] = wall + timedelta(weeks=policy.weekly.weeks)
    if policy.monthly and _matches_date(policy.monthly, wall.date()):
        walls["monthly"] = _add_months(wall, policy.monthly.months)
    if policy.yearly and _matches_date(policy.yearly, wall.date()):
        walls["yearly"] = _add_months(wall, 12 * policy.yearly.years)
    return {name: local_run_instant(w.date(), w.time(), zone) for name, w in walls.items()}


# --- evaluation --------------------------------------------------------------------------------


def evaluate(
    points, policy: RetentionPolicy, tz: str | tzinfo, now: datetime
) -> dict[str, Verdict]:
    """Verdict per point id. A point is kept while `now < expires_at` (expiry is exclusive).

    Not kept and selected by no rule: `expires_at` is None. Kept only as the newest point:
    rules == ("latest",) and `expires_at` is None.
    """
    zone = as_zone(tz)
    if now.utcoffset() is None:
        raise ValueError("`now` must be timezone-aware.")
    points = sorted(points, key=lambda p: (p.time.astimezone(UTC), p.id))
    if len({p.id for p in points}) != len(points):
        raise ValueError("Recovery point ids must be unique.")
    newest = points[-1] if points else None
    verdicts = {}
    for point in points:
        if point.retain_until is not None:
            expiries = {"retain_until": point.retain_until.astimezone(UTC)}
        else:
            expiries = _rule_expiries(point.time, policy, zone)
        keeping = tuple(name for name, expiry in expiries.items() if now < expiry)
        expires_at = max(expiries.values(), default=None)
        if point is newest:
            verdicts[point.id] = Verdict(
                True, (*keeping, "latest"), expires_at if keeping else None
            )
        else:
            verdicts[point.id] = Verdict(bool(keeping), keeping, expires_at)
    return verdicts


# --- capacity ------------------------------------------------------------------------------------


def _run_days_in_window(schedule: Schedule, window_days: int, weekdays) -> int:
    """Most backup days on `weekdays` that any `window_days` consecutive days can contain."""
    if schedule.frequency == DAILY:
        cycle = [day in weekdays for day in range(7)]
    else:
        run_week = [day in weekdays and day in schedule.weekdays for day in range(7)]
        cycle = run_week + [False] * 7 * (schedule.every_weeks - 1)
    full_cycles, rest = divmod(window_days, len(cycle))
    starts = range(len(cycle))
    best_rest = max(sum(cycle[(start + i) % len(cycle)] for i in range(rest)) for start in starts)
    return full_cycles * sum(cycle) + best_rest


def _dates_per_month(rule, schedule: Schedule) -> int:
    if not _uses_weeks(rule):
        return len(set(rule.days_of_month))
    weekdays = set(rule.weekdays)
    if schedule.frequency == WEEKLY:
        weekdays &= set(schedule.weekdays)
    return len(set(rule.weeks_of_month)) * len(weekdays)


def _rule_capacity(name: str, rule, schedule: Schedule) -> int:
    # A DST gap moves a point later without moving its successor, so a rule can briefly hold
    # one point more than its window: hence the +1. A week-of-month date moves within its month
    # ("last Saturday" is the 25th one year and the 31st the next), so N months can overlap N+1
    # such dates.
    per_day = len(set(schedule.times))
    if name == "daily":
        return per_day * _run_days_in_window(schedule, rule.days, range(7)) + 1
    if name == "weekly":
        return per_day * _run_days_in_window(schedule, 7 * rule.weeks, set(rule.weekdays)) + 1
    months = len(set(rule.months)) if name == "yearly" else 1
    periods = duration(name, rule) + 1 if _uses_weeks(rule) else duration(name, rule)
    extra = 0 if _uses_weeks(rule) else 1
    return per_day * months * _dates_per_month(rule, schedule) * periods + extra


def max_points(policy: RetentionPolicy, schedule: Schedule) -> int:
    """Safe upper bound on how many points the rules can keep at once (not counting "latest")."""
    return sum(_rule_capacity(name, rule, schedule) for name, rule in policy.rules())


# --- validation --------------------------------------------------------------------------------


def retention_errors(
    policy: RetentionPolicy, schedule: Schedule, *, security_minimums: bool
) -> dict[str, list[str]]:
    """Every problem with the policy and its schedule, by field; empty when both are valid."""
    errors = schedule_errors(schedule)
    fields: dict[str, list[str]] = {name: [] for name in (*RULE_NAMES, "retention")}
    rules = policy.rules()
    if not rules:
        fields["retention"].append(
            _("Choose at least one retention rule, such as daily or weekly.")
        )
    for name, rule in rules:
        fields[name] += _duration_errors(name, duration(name, rule), security_minimums)
        if name == "weekly":
            fields[name] += _weekday_errors(rule.weekdays, name)
        elif name in ("monthly", "yearly"):
            fields[name] += _calendar_errors(name, rule)
    if not errors and not any(fields.values()):
        for name, rule in rules:
            fields[name] += _fit_errors(name, rule, schedule)
        if not any(fields.values()):
            fields["retention"] += _capacity_errors(policy, schedule)
    errors.update({field: messages for field, messages in fields.items() if messages})
    return errors


def validate_retention(policy: RetentionPolicy, schedule: Schedule, *, security_minimums: bool):
    errors = retention_errors(policy, schedule, security_minimums=security_minimums)
    if errors:
        raise PolicyValidationError(errors)


def _duration_errors(name: str, value, security_minimums: bool) -> list[str]:
    low, high = LIMITS[name]
    if not is_whole_number(value):
        return [_whole_number_error(name)]
    minimum = SECURITY_MINIMUMS[name] if security_minimums else low
    values = {
        "backups": RULE_BACKUPS[name],
        "value": value,
        "minimum": minimum,
        "duration": _duration_text(name, minimum),
        "range": _duration_range(name, low, high),
        "low": low,
        "high": high,
    }
    if value < minimum and minimum > low:
        message = _(
            "The vault's security settings require keeping %(backups)s at least %(duration)s; "
            "increase %(value)s to at least %(minimum)s."
        )
        return [message % values]
    if value < low:
        return [_("Keep %(backups)s for %(range)s; increase %(value)s to %(low)s.") % values]
    if value > high:
        return [_("Keep %(backups)s for %(range)s; reduce %(value)s to %(high)s.") % values]
    return []


def _choice_errors(values, valid, noun: str, allowed: str, name: str) -> list[str]:
    """Problems with a set of choices, e.g. the weekdays of weekly retention.

    `noun` names one choice and `allowed` says which values are valid, both translated; `name`
    is the rule.
    """
    retention = RULE_RETENTION[name]
    if not values:
        return [
            _("Choose at least one %(choice)s for %(retention)s.")
            % {"choice": noun, "retention": retention}
        ]
    invalid = [value for value in values if not valid(value)]
    if invalid:
        return [
            _("%(allowed)s; remove %(value)s from %(retention)s.")
            % {"allowed": allowed, "value": repr(invalid[0]), "retention": retention}
        ]
    if len(set(values)) < len(values):
        return [
            _("Choose each %(choice)s once for %(retention)s.")
            % {"choice": noun, "retention": retention}
        ]
    return []


def _is_weekday(value) -> bool:
    return is_whole_number(value) and 0 <= value <= 6


def _is_month(value) -> bool:
    return is_whole_number(value) and 1 <= value <= 12


def _is_day_of_month(value) -> bool:
    return value == LAST or (is_whole_number(value) and 1 <= value <= 28)


def _weekday_errors(weekdays, name: str) -> list[str]:
    allowed = _("Days are numbered 0 (Monday) to 6 (Sunday)")
    return _choice_errors(weekdays, _is_weekday, pgettext("choice", "day"), allowed, name)


def _calendar_errors(name: str, rule) -> list[str]:
    errors, retention = [], RULE_RETENTION[name]
    if name == "yearly":
        allowed = _("Months are numbered 1 (January) to 12 (December)")
        month = pgettext("choice", "month")
        errors += _choice_errors(rule.months, _is_month, month, allowed, name)
    by_week = bool(rule.weeks_of_month or rule.weekdays)
    if rule.days_of_month and by_week:
        message = _(
            "Choose either days of the month or a week of the month and a day for "
            "%(retention)s, not both."
        )
        return errors + [message % {"retention": retention}]
    if not rule.days_of_month and not by_week:
        message = _(
            "Choose days of the month (1 to 28 or last), or a week of the month and a day, "
            "for %(retention)s."
        )
        return errors + [message % {"retention": retention}]
    if not by_week:
        allowed = _("Days of the month are 1 to 28 or 'last'")
        day = pgettext("choice", "day of the month")
        return errors + _choice_errors(rule.days_of_month, _is_day_of_month, day, allowed, name)
    allowed = _("Weeks of the month are first, second, third, fourth or last")
    week = pgettext("choice", "week")
    weeks = _choice_errors(rule.weeks_of_month, WEEKS_OF_MONTH.__contains__, week, allowed, name)
    return errors + weeks + _weekday_errors(rule.weekdays, name)


def _fit_errors(name: str, rule, schedule: Schedule) -> list[str]:
    if schedule.frequency == DAILY:
        return []
    if name == "daily":
        return [
            _(
                "Daily retention needs a daily schedule; the schedule runs weekly. "
                "Remove daily retention or make the schedule daily."
            )
        ]
    values = {"retention": RULE_RETENTION[name], "days": weekday_list(schedule.weekdays)}
    if name != "weekly" and not _uses_weeks(rule):
        example = min(schedule.weekdays, key=DISPLAY_WEEK_ORDER.index)
        message = _(
            "%(retention)s on %(selection)s needs a daily schedule; the schedule runs on "
            "%(days)s. Choose a week of the month and a day instead, such as the last "
            "%(example)s."
        )
        selection = _selection_phrase(name, rule)
        return [
            capfirst(message % {**values, "selection": selection, "example": weekday_name(example)})
        ]
    missing = [day for day in rule.weekdays if day not in schedule.weekdays]
    if not missing:
        return []
    on = weekday_list(missing) if name == "weekly" else _selection_phrase(name, rule)
    if len(missing) == 1:
        message = _(
            "%(retention)s on %(selection)s needs a backup on %(missing)s; the schedule runs "
            "on %(days)s."
        )
    else:
        message = _(
            "%(retention)s on %(selection)s needs backups on those days; the schedule runs "
            "on %(days)s."
        )
    return [capfirst(message % {**values, "selection": on, "missing": weekday_list(missing)})]


def _capacity_errors(policy: RetentionPolicy, schedule: Schedule) -> list[str]:
    total = max_points(policy, schedule)
    excess = total - MAX_POINTS_PER_MACHINE
    if excess <= 0:
        return []
    values = {
        "total": f"{total:,}",
        "limit": f"{MAX_POINTS_PER_MACHINE:,}",
        "excess": f"{excess:,}",
    }
    name, rule = max(policy.rules(), key=lambda item: _rule_capacity(*item, schedule))
    rest = total - _rule_capacity(name, rule, schedule)

    def fits(length: int) -> bool:
        shorter = replace(rule, **{DURATION_FIELDS[name]: length})
        return rest + _rule_capacity(name, shorter, schedule) <= MAX_POINTS_PER_MACHINE

    low, high = LIMITS[name][0], duration(name, rule) - 1
    if fits(low):
        while low < high:  # largest length that fits; capacity grows with length
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        message = _(
            "This policy can keep up to %(total)s recovery points per machine; the limit is "
            "%(limit)s. Reduce it by %(excess)s points, for example by keeping %(backups)s "
            "%(duration)s."
        )
        return [
            message
            % {**values, "backups": RULE_BACKUPS[name], "duration": _duration_text(name, low)}
        ]
    message = _(
        "This policy can keep up to %(total)s recovery points per machine; the limit is "
        "%(limit)s. Reduce it by %(excess)s points."
    )
    return [message % values]


# --- descriptions and comparisons --------------------------------------------------------------


def _selection_phrase(name: str, rule, months=None, *, leading: bool = False) -> str:
    """What a monthly/yearly rule selects: "the last Saturday", "day 1 and the last day of May".

    `leading`: the phrase starts a line, which in English drops a leading "the".
    """
    if _uses_weeks(rule):
        values = {
            "weeks": join_words(
                [WEEK_WORDS[w] for w in WEEKS_OF_MONTH if w in rule.weeks_of_month]
            ),
            "days": weekday_list(rule.weekdays),
        }
        if leading:
            # Translators: weeks of the month and days at the start of a line ("first and last
            # Saturday").
            phrase = pgettext("selection at the start of a line", "%(weeks)s %(days)s") % values
        else:
            # Translators: weeks of the month and days ("the first and last Saturday").
            phrase = _("the %(weeks)s %(days)s") % values
    else:
        numbered = sorted(d for d in rule.days_of_month if d != LAST)
        words = [_("day %(day)s") % {"day": d} for d in numbered]
        if LAST in rule.days_of_month:
            if leading and not words:
                words.append(pgettext("selection at the start of a line", "last day"))
            else:
                words.append(_("the last day"))
        phrase = join_words(words)
    if name == "monthly":
        return phrase
    month_names = join_words([_(MONTH_NAMES[m]) for m in sorted(set(months or rule.months))])
    # Translators: days of the year, e.g. "the last Saturday of March and September".
    return _("%(selection)s of %(months)s") % {"selection": phrase, "months": month_names}


def describe_retention(policy: RetentionPolicy) -> list[str]:
    lines = []
    for name, rule in policy.rules():
        kept = _duration_text(name, duration(name, rule))
        if name == "daily":
            lines.append(_("Daily backups kept %(duration)s") % {"duration": kept})
        elif name == "weekly":
            values = {"days": weekday_list(rule.weekdays), "duration": kept}
            lines.append(_("%(days)s backups kept %(duration)s") % values)
        else:
            values = {"selection": _selection_phrase(name, rule, leading=True), "duration": kept}
            if name == "monthly":
                line = _("%(selection)s of each month kept %(duration)s") % values
            else:
                # Translators: the selection already names the months ("last Saturday of March").
                line = _("%(selection)s kept %(duration)s") % values
            lines.append(capfirst(line))
    return lines


# (month, day of month, month length, weekday): every combination a real date can have.
CALENDAR_FACTS = tuple(
    (month, day_of_month, length, weekday)
    for month in range(1, 13)
    for length in ((28, 29) if month == 2 else (calendar.monthrange(2001, month)[1],))
    for day_of_month in range(1, length + 1)
    for weekday in range(7)
)


def _lost_selections(name: str, old, new) -> list[str]:
    """Each single choice of the old rule that selects some date the new rule no longer does."""
    if _uses_weeks(old):
        singles = [
            replace(old, weeks_of_month=(week,), weekdays=(day,))
            for week in old.weeks_of_month
            for day in old.weekdays
        ]
    else:
        singles = [replace(old, days_of_month=(day,)) for day in old.days_of_month]
    lost = []
    for single in singles:
        facts = [f for f in CALENDAR_FACTS if _matches(single, *f) and not _matches(new, *f)]
        if facts:
            lost.append(_selection_phrase(name, single, {month for month, *_rest in facts}))
    return lost


def is_reduction(old: RetentionPolicy, new: RetentionPolicy) -> list[str]:
    """Every way `new` keeps less than `old`; empty when `new` keeps at least as much."""
    reasons = []
    for name, old_rule in old.rules():
        retention = RULE_RETENTION[name]
        new_rule = getattr(new, name)
        if new_rule is None:
            reasons.append(capfirst(_("%(retention)s is removed.") % {"retention": retention}))
            continue
        old_length, new_length = duration(name, old_rule), duration(name, new_rule)
        if new_length < old_length:
            values = {
                "backups": RULE_BACKUPS[name],
                "new": _duration_text(name, new_length),
                "old": _duration_text(name, old_length),
            }
            reasons.append(
                capfirst(_("%(backups)s would be kept %(new)s instead of %(old)s.") % values)
            )
        if name == "weekly":
            dropped = [day for day in old_rule.weekdays if day not in new_rule.weekdays]
            if dropped:
                reasons.append(
                    _("Weekly retention no longer keeps %(days)s backups.")
                    % {"days": weekday_list(dropped)}
                )
        elif name in ("monthly", "yearly"):
            lost = _lost_selections(name, old_rule, new_rule)
            if lost:
                values = {"retention": retention, "selections": join_words(lost)}
                reasons.append(
                    capfirst(_("%(retention)s no longer keeps %(selections)s.") % values)
                )
    return reasons
