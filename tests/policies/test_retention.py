from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.retention import (
    DailyRule,
    MonthlyRule,
    Point,
    PolicyValidationError,
    RetentionPolicy,
    Verdict,
    WeeklyRule,
    YearlyRule,
    describe_retention,
    evaluate,
    is_reduction,
    max_points,
    retention_errors,
    validate_retention,
)
from policies.schedule import Schedule, next_runs

BERLIN = ZoneInfo("Europe/Berlin")
SATURDAY, SUNDAY, WEDNESDAY = 5, 6, 2
LAST_SATURDAY = {"weeks_of_month": ("last",), "weekdays": (SATURDAY,)}
REFERENCE_SCHEDULE = Schedule("daily", (time(0), time(18)))
REFERENCE_POLICY = RetentionPolicy(
    daily=DailyRule(7),
    weekly=WeeklyRule((SATURDAY,), 4),
    monthly=MonthlyRule(12, **LAST_SATURDAY),
    yearly=YearlyRule(10, (3,), **LAST_SATURDAY),
)
SUNDAY_WEDNESDAY = Schedule("weekly", (time(1), time(9, 30)), (SUNDAY, WEDNESDAY))


def local(*args, zone=BERLIN) -> datetime:
    return datetime(*args, tzinfo=zone)


def simulate(schedule, zone, start: datetime, end: datetime, prefix="p") -> list[Point]:
    runs = next_runs(schedule, zone, start, 3 * ((end - start).days + 2))
    return [Point(f"{prefix}{n}", run) for n, run in enumerate(runs) if run <= end]


def kept(verdicts) -> set[str]:
    return {point_id for point_id, verdict in verdicts.items() if verdict.keep}


# --- the reference example ---------------------------------------------------------------------


def test_reference_policy_over_two_years_keeps_exactly_the_expected_points():
    points = simulate(REFERENCE_SCHEDULE, BERLIN, local(2023, 12, 31, 23), local(2025, 12, 31, 18))
    assert len(points) == 2 * (366 + 365)
    now = local(2025, 12, 31, 21)
    verdicts = evaluate(points, REFERENCE_POLICY, "Europe/Berlin", now)

    by_rule: dict[str, set[date]] = {}
    kept_points = [p for p in points if verdicts[p.id].keep]
    for point in kept_points:
        for rule in verdicts[point.id].rules:
            by_rule.setdefault(rule, set()).add(point.time.astimezone(BERLIN).date())

    december = [date(2025, 12, day) for day in (6, 13, 20, 27)]
    last_saturdays_2025 = [
        date(2025, month, day)
        for month, day in [(1, 25), (2, 22), (3, 29), (4, 26), (5, 31), (6, 28)]
        + [(7, 26), (8, 30), (9, 27), (10, 25), (11, 29), (12, 27)]
    ]
    assert by_rule == {
        "daily": {date(2025, 12, day) for day in range(25, 32)},
        "weekly": set(december),
        "monthly": set(last_saturdays_2025),
        "yearly": {date(2024, 3, 30), date(2025, 3, 29)},
        "latest": {date(2025, 12, 31)},
    }
    # Both daily times are kept on every kept date: 7 + 3 + 11 + 1 dates.
    assert len(kept_points) == 2 * 22
    assert all(p.time.astimezone(BERLIN).time() in (time(0), time(18)) for p in kept_points)
    assert len(kept_points) <= max_points(REFERENCE_POLICY, REFERENCE_SCHEDULE) + 1

    oldest = min(kept_points, key=lambda p: p.time)
    assert oldest.time == local(2024, 3, 30, 0)
    assert verdicts[oldest.id] == Verdict(True, ("yearly",), local(2034, 3, 30, 0).astimezone(UTC))
    newest = verdicts[points[-1].id]
    assert newest == Verdict(True, ("daily", "latest"), local(2026, 1, 7, 18).astimezone(UTC))
    # Expiry is the longest rule: the 2025 March point is also monthly but kept for yearly.
    march = next(p for p in points if p.time == local(2025, 3, 29, 18))
    assert verdicts[march.id].expires_at == local(2035, 3, 29, 18).astimezone(UTC)
    assert verdicts[march.id].rules == ("monthly", "yearly")


# --- calendar arithmetic --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "taken", "expires"),
    [
        # Months clamp to the end of the month; years clamp Feb 29 to Feb 28.
        (
            RetentionPolicy(monthly=MonthlyRule(1, ("last",))),
            local(2025, 3, 31, 18),
            local(2025, 4, 30, 18),
        ),
        (
            RetentionPolicy(yearly=YearlyRule(1, (2,), ("last",))),
            local(2024, 2, 29, 0),
            local(2025, 2, 28, 0),
        ),
        # Days are local calendar days: the expiry keeps the wall time across DST changes...
        (RetentionPolicy(daily=DailyRule(7)), local(2025, 3, 24, 18), local(2025, 3, 31, 18)),
        (RetentionPolicy(daily=DailyRule(7)), local(2025, 10, 20, 18), local(2025, 10, 27, 18)),
        # ...and a wall time skipped by the gap expires at the end of the gap.
        (RetentionPolicy(daily=DailyRule(7)), local(2025, 3, 23, 2, 30), local(2025, 3, 30, 3)),
        (
            RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 1)),
            local(2025, 10, 18, 2, 30),
            local(2025, 10, 25, 2, 30),
        ),
    ],
)
def test_expiry_is_counted_on_the_local_calendar(policy, taken, expires):
    point = Point("a", taken)
    verdict = evaluate([point, Point("newer", taken + timedelta(days=1000))], policy, BERLIN, taken)
    assert verdict["a"].expires_at == expires.astimezone(UTC)


def test_expiry_is_exclusive():
    policy = RetentionPolicy(daily=DailyRule(7))
    points = [Point("old", local(2025, 1, 1, 12)), Point("new", local(2025, 2, 1, 12))]
    expires = local(2025, 1, 8, 12)
    assert evaluate(points, policy, BERLIN, expires - timedelta(microseconds=1))["old"].keep
    assert not evaluate(points, policy, BERLIN, expires)["old"].keep


def test_a_week_of_month_window_can_hold_one_date_more_than_its_length():
    # The last Saturday was Jan 25 and then Feb 22: on Feb 23 both are within one month.
    policy = RetentionPolicy(monthly=MonthlyRule(1, **LAST_SATURDAY))
    schedule = Schedule("daily", (time(12),))
    points = simulate(schedule, BERLIN, local(2024, 12, 1), local(2025, 2, 23, 12))
    verdicts = evaluate(points, policy, BERLIN, local(2025, 2, 23, 13))
    dates = {p.time.astimezone(BERLIN).date() for p in points if "monthly" in verdicts[p.id].rules}
    assert dates == {date(2025, 1, 25), date(2025, 2, 22)}
    assert max_points(policy, schedule) == 2


def test_a_point_moved_by_a_dst_gap_can_overlap_its_successor_once():
    # 2025-03-30 02:30 ran at 03:00, so it expires at 04-06 03:00, after 04-06 02:30 has run.
    schedule, policy = Schedule("daily", (time(2, 30),)), RetentionPolicy(DailyRule(7))
    points = simulate(schedule, BERLIN, local(2025, 3, 1), local(2025, 4, 6, 2, 45))
    verdicts = evaluate(points, policy, BERLIN, local(2025, 4, 6, 2, 45))
    assert len(kept(verdicts)) == 8 == max_points(policy, schedule)
    assert len(kept(evaluate(points, policy, BERLIN, local(2025, 4, 6, 3)))) == 7


# --- kinds, the newest point and inputs ----------------------------------------------------------


def test_adhoc_points_with_a_retain_until_date_ignore_the_rules():
    policy = RetentionPolicy(daily=DailyRule(30))
    taken = local(2025, 5, 1, 12)
    points = [
        Point("short", taken, taken + timedelta(days=2), "adhoc"),
        Point("long", taken, taken + timedelta(days=400), "adhoc"),
        Point("ruled", taken, None, "adhoc"),
        Point("seed", taken, None, "offline"),
        Point("newest", taken + timedelta(days=500)),
    ]
    verdicts = evaluate(points, policy, BERLIN, taken + timedelta(days=10))
    assert verdicts["short"] == Verdict(False, (), (taken + timedelta(days=2)).astimezone(UTC))
    assert verdicts["long"] == Verdict(
        True, ("retain_until",), (taken + timedelta(days=400)).astimezone(UTC)
    )
    assert (
        verdicts["ruled"]
        == verdicts["seed"]
        == Verdict(True, ("daily",), local(2025, 5, 31, 12).astimezone(UTC))
    )


def test_the_newest_point_is_kept_without_an_expiry_when_no_rule_keeps_it():
    policy = RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 1))
    points = [Point("tuesday", local(2025, 1, 7, 12)), Point("wednesday", local(2025, 1, 8, 12))]
    verdicts = evaluate(points, policy, BERLIN, local(2030, 1, 1))
    assert verdicts == {
        "tuesday": Verdict(False, (), None),
        "wednesday": Verdict(True, ("latest",), None),
    }
    assert evaluate([], policy, BERLIN, local(2030, 1, 1)) == {}


def test_invalid_points_and_arguments_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        Point("naive", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="only ad-hoc"):
        Point("x", local(2025, 1, 1), local(2025, 2, 1), "scheduled")
    with pytest.raises(ValueError, match="kind"):
        Point("x", local(2025, 1, 1), kind="manual")
    twins = [Point("same", local(2025, 1, 1)), Point("same", local(2025, 1, 2))]
    with pytest.raises(ValueError, match="unique"):
        evaluate(twins, REFERENCE_POLICY, BERLIN, local(2025, 1, 3))
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate([], REFERENCE_POLICY, BERLIN, datetime(2025, 1, 3))


# --- properties -------------------------------------------------------------------------------

zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
times = st.builds(time, st.sampled_from([0, 1, 2, 3, 12, 18, 23]), st.sampled_from([0, 15, 30, 45]))


def choices(elements, max_size: int):
    return st.lists(elements, min_size=1, max_size=max_size, unique=True).map(tuple)


weekday_sets = choices(st.integers(0, 6), 7)
schedules = st.builds(Schedule, st.just("daily"), choices(times, 3)) | st.builds(
    Schedule,
    st.just("weekly"),
    choices(times, 2),
    weekday_sets,
    st.integers(1, 2),
    st.just(date(2024, 1, 1)),
)


@st.composite
def calendar_form(draw) -> dict:
    if draw(st.booleans()):
        return {"days_of_month": draw(choices(st.integers(1, 28) | st.just("last"), 3))}
    weeks = draw(choices(st.sampled_from(["first", "second", "third", "fourth", "last"]), 2))
    return {"weeks_of_month": weeks, "weekdays": draw(weekday_sets)}


@st.composite
def policies(draw) -> RetentionPolicy:
    rules = {
        "daily": DailyRule(draw(st.integers(7, 20))),
        "weekly": WeeklyRule(draw(weekday_sets), draw(st.integers(1, 6))),
        "monthly": MonthlyRule(draw(st.integers(1, 4)), **draw(calendar_form())),
        "yearly": YearlyRule(1, draw(choices(st.integers(1, 12), 3)), **draw(calendar_form())),
    }
    chosen = draw(choices(st.sampled_from(sorted(rules)), 4))
    return RetentionPolicy(**{name: rules[name] for name in chosen})


@st.composite
def histories(draw):
    """Scheduled points over up to ~14 months, ending at a random time."""
    zone = draw(zones)
    schedule = draw(schedules)
    start = draw(st.datetimes(datetime(2018, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)))
    end = start + draw(st.timedeltas(timedelta(days=1), timedelta(days=430)))
    points = simulate(schedule, zone, start, end)
    return zone, schedule, draw(policies()), points


PROPERTY_SETTINGS = settings(deadline=None, max_examples=40)


@PROPERTY_SETTINGS
@given(histories(), st.timedeltas(timedelta(0), timedelta(days=400)))
def test_the_newest_point_is_never_expired_and_verdicts_agree_with_now(history, later):
    zone, _, policy, points = history
    if not points:
        return
    now = points[-1].time + later
    verdicts = evaluate(points, policy, zone, now)
    assert verdicts[points[-1].id].keep
    assert [pid for pid, verdict in verdicts.items() if "latest" in verdict.rules] == [
        points[-1].id
    ]
    for verdict in verdicts.values():
        assert verdict.keep == bool(verdict.rules)
        if verdict.keep and verdict.rules != ("latest",):
            assert verdict.expires_at > now
        if not verdict.keep:
            assert verdict.expires_at is None or verdict.expires_at <= now


@PROPERTY_SETTINGS
@given(histories(), st.timedeltas(timedelta(0), timedelta(hours=30)))
def test_retention_never_keeps_more_than_max_points(history, after_last):
    zone, schedule, policy, points = history
    if not points:
        return
    verdicts = evaluate(points, policy, zone, points[-1].time + after_last)
    assert len(kept(verdicts)) <= max_points(policy, schedule) + 1


@PROPERTY_SETTINGS
@given(
    histories(), st.randoms(use_true_random=False), st.timedeltas(timedelta(0), timedelta(days=60))
)
def test_evaluation_ignores_input_order_and_is_idempotent(history, random, later):
    zone, _, policy, points = history
    taken = points[0].time if points else datetime(2025, 1, 1, tzinfo=UTC)
    points = points + [
        Point("adhoc-until", taken, taken + timedelta(days=20), "adhoc"),
        Point("adhoc-ruled", taken + timedelta(hours=1), None, "adhoc"),
    ]
    now = max(p.time for p in points) + later
    verdicts = evaluate(points, policy, zone, now)
    shuffled = random.sample(points, len(points))
    assert evaluate(shuffled, policy, zone, now) == verdicts

    survivors = [p for p in shuffled if verdicts[p.id].keep]
    again = evaluate(survivors, policy, zone, now)
    assert again == {pid: verdict for pid, verdict in verdicts.items() if verdict.keep}


@PROPERTY_SETTINGS
@given(histories(), st.integers(0, 999_999), st.integers(0, 1_000_000))
def test_when_backups_stop_the_longest_kept_point_survives_until_its_expiry(history, f1, f2):
    zone, _, policy, points = history
    if len(points) < 2:
        return
    stopped = points[-1].time
    at_stop = evaluate(points, policy, zone, stopped)
    longest = max(points, key=lambda p: at_stop[p.id].expires_at or stopped)
    expiry = at_stop[longest.id].expires_at
    if expiry is None or expiry <= stopped:
        return
    now = stopped + (expiry - stopped) * f1 // 1_000_000
    later = evaluate(points, policy, zone, now)
    assert later[longest.id].keep
    # With no new points, the kept set only shrinks and the newest point stays.
    even_later = evaluate(points, policy, zone, now + (expiry - now) * f2 // 1_000_000)
    assert kept(even_later) <= kept(later) <= kept(at_stop)
    assert points[-1].id in kept(even_later)


def test_steady_state_daily_retention_keeps_exactly_days_times_runs():
    schedule = Schedule("daily", (time(1), time(13), time(19)))
    points = simulate(
        schedule, "UTC", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, 20, tzinfo=UTC)
    )
    verdicts = evaluate(
        points, RetentionPolicy(daily=DailyRule(10)), "UTC", datetime(2025, 3, 1, 20, tzinfo=UTC)
    )
    assert len(kept(verdicts)) == 30
    assert max_points(RetentionPolicy(daily=DailyRule(10)), schedule) == 31


# --- validation ---------------------------------------------------------------------------------

SCHEDULE_DAYS = "the schedule runs on Sunday and Wednesday"


def refused(field, message, policy, schedule=REFERENCE_SCHEDULE):
    return pytest.param(policy, schedule, {field: [message]}, id=message[:40])


VALIDATION_CASES = [
    refused(
        "retention",
        "Choose at least one retention rule, such as daily or weekly.",
        RetentionPolicy(),
    ),
    refused(
        "daily",
        "Keep daily backups for 7 to 9999 days; increase 5 to 7.",
        RetentionPolicy(DailyRule(5)),
    ),
    refused(
        "yearly",
        "Keep yearly backups for 1 to 99 years; reduce 120 to 99.",
        RetentionPolicy(yearly=YearlyRule(120, (3,), ("last",))),
    ),
    refused(
        "weekly",
        "The vault's security settings require keeping weekly backups at least 4 weeks; "
        "increase 2 to at least 4.",
        RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 2)),
    ),
    refused(
        "monthly",
        "The vault's security settings require keeping monthly backups at least 3 months; "
        "increase 2 to at least 3.",
        RetentionPolicy(monthly=MonthlyRule(2, (1,))),
    ),
    refused(
        "weekly",
        "Choose at least one day for weekly retention.",
        RetentionPolicy(weekly=WeeklyRule((), 4)),
    ),
    refused(
        "monthly",
        "Days of the month are 1 to 28 or 'last'; remove 31 from monthly retention.",
        RetentionPolicy(monthly=MonthlyRule(3, (31,))),
    ),
    refused(
        "monthly",
        "Weeks of the month are first, second, third, fourth or last; "
        "remove 'fifth' from monthly retention.",
        RetentionPolicy(monthly=MonthlyRule(3, weeks_of_month=("fifth",), weekdays=(SATURDAY,))),
    ),
    refused(
        "monthly",
        "Choose either days of the month or a week of the month and a day for monthly retention, "
        "not both.",
        RetentionPolicy(monthly=MonthlyRule(3, (1,), ("last",), (SATURDAY,))),
    ),
    refused(
        "monthly",
        "Choose days of the month (1 to 28 or last), or a week of the month and a day, "
        "for monthly retention.",
        RetentionPolicy(monthly=MonthlyRule(3)),
    ),
    refused(
        "monthly",
        "Choose at least one day for monthly retention.",
        RetentionPolicy(monthly=MonthlyRule(3, weeks_of_month=("last",))),
    ),
    refused(
        "yearly",
        "Choose at least one month for yearly retention.",
        RetentionPolicy(yearly=YearlyRule(1, (), ("last",))),
    ),
    # Only choices that fit the schedule.
    refused(
        "weekly",
        f"Weekly retention on Saturday needs a backup on Saturday; {SCHEDULE_DAYS}.",
        RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 4)),
        SUNDAY_WEDNESDAY,
    ),
    refused(
        "weekly",
        f"Weekly retention on Friday and Saturday needs backups on those days; {SCHEDULE_DAYS}.",
        RetentionPolicy(weekly=WeeklyRule((5, 4, 6), 4)),
        SUNDAY_WEDNESDAY,
    ),
    refused(
        "daily",
        "Daily retention needs a daily schedule; the schedule runs weekly. "
        "Remove daily retention or make the schedule daily.",
        RetentionPolicy(DailyRule(7)),
        SUNDAY_WEDNESDAY,
    ),
    refused(
        "monthly",
        f"Monthly retention on day 1 and the last day needs a daily schedule; {SCHEDULE_DAYS}. "
        "Choose a week of the month and a day instead, such as the last Sunday.",
        RetentionPolicy(monthly=MonthlyRule(3, (1, "last"))),
        SUNDAY_WEDNESDAY,
    ),
    refused(
        "monthly",
        f"Monthly retention on the last Saturday needs a backup on Saturday; {SCHEDULE_DAYS}.",
        RetentionPolicy(monthly=MonthlyRule(3, **LAST_SATURDAY)),
        SUNDAY_WEDNESDAY,
    ),
    refused(
        "yearly",
        "Yearly retention on the last Saturday of March needs a backup on Saturday; "
        f"{SCHEDULE_DAYS}.",
        RetentionPolicy(yearly=YearlyRule(10, (3,), **LAST_SATURDAY)),
        SUNDAY_WEDNESDAY,
    ),
    # At most 9,999 points: 3 times a day for 9,999 days can hold 29,998 (the +1 is a DST gap).
    refused(
        "retention",
        "This policy can keep up to 29,998 recovery points per machine; the limit is 9,999. "
        "Reduce it by 19,999 points, for example by keeping daily backups 3,332 days.",
        RetentionPolicy(DailyRule(9999)),
        Schedule("daily", (time(1), time(2), time(3))),
    ),
    # An invalid schedule is reported, and fit checks wait until it is fixed.
    refused(
        "weekdays",
        "Choose at least one day for a weekly schedule.",
        RetentionPolicy(DailyRule(7)),
        Schedule("weekly", (time(1),)),
    ),
]


@pytest.mark.parametrize(("policy", "schedule", "expected"), VALIDATION_CASES)
def test_validation_messages_say_what_to_change(policy, schedule, expected):
    assert retention_errors(policy, schedule, security_minimums=True) == expected
    with pytest.raises(PolicyValidationError) as raised:
        validate_retention(policy, schedule, security_minimums=True)
    assert raised.value.errors == expected


def test_valid_policies_pass_and_security_minimums_are_optional():
    validate_retention(REFERENCE_POLICY, REFERENCE_SCHEDULE, security_minimums=True)
    fits_weekly_schedule = RetentionPolicy(
        weekly=WeeklyRule((SUNDAY, WEDNESDAY), 4),
        monthly=MonthlyRule(3, weeks_of_month=("first",), weekdays=(SUNDAY,)),
        yearly=YearlyRule(1, (3, 9), weeks_of_month=("last",), weekdays=(WEDNESDAY,)),
    )
    validate_retention(fits_weekly_schedule, SUNDAY_WEDNESDAY, security_minimums=True)
    short = RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 1), monthly=MonthlyRule(1, (1,)))
    validate_retention(short, REFERENCE_SCHEDULE, security_minimums=False)
    errors = retention_errors(short, REFERENCE_SCHEDULE, security_minimums=True)
    assert set(errors) == {"weekly", "monthly"}
    three_a_day = Schedule("daily", (time(1), time(2), time(3)))
    validate_retention(RetentionPolicy(daily=DailyRule(3332)), three_a_day, security_minimums=False)
    with pytest.raises(PolicyValidationError):
        validate_retention(
            RetentionPolicy(daily=DailyRule(3333)), three_a_day, security_minimums=False
        )


def test_max_points_is_a_sum_of_rule_windows():
    assert (
        max_points(REFERENCE_POLICY, REFERENCE_SCHEDULE)
        == (2 * 7 + 1) + (2 * 4 + 1) + 2 * 13 + 2 * 11
    )
    # Every 2 weeks on Sunday and Wednesday: 4 weeks of weekly retention hold 2 run weeks.
    biweekly = Schedule("weekly", (time(1),), (SUNDAY, WEDNESDAY), 2, date(2025, 1, 5))
    assert max_points(RetentionPolicy(weekly=WeeklyRule((SUNDAY,), 4)), biweekly) == 2 + 1
    assert max_points(RetentionPolicy(weekly=WeeklyRule((SUNDAY,), 3)), biweekly) == 2 + 1
    assert (
        max_points(RetentionPolicy(monthly=MonthlyRule(6, (1, 15, "last"))), REFERENCE_SCHEDULE)
        == 2 * 3 * 6 + 1
    )


# --- descriptions and reductions ------------------------------------------------------------


def test_describe_retention():
    assert describe_retention(REFERENCE_POLICY) == [
        "Daily backups kept 7 days",
        "Saturday backups kept 4 weeks",
        "Last Saturday of each month kept 12 months",
        "Last Saturday of March kept 10 years",
    ]
    other = RetentionPolicy(
        weekly=WeeklyRule((SATURDAY, SUNDAY), 1),
        monthly=MonthlyRule(1, ("last", 15, 1)),
        yearly=YearlyRule(1, (7, 1), (1,)),
    )
    assert describe_retention(other) == [
        "Sunday and Saturday backups kept 1 week",
        "Day 1, day 15 and the last day of each month kept 1 month",
        "Day 1 of January and July kept 1 year",
    ]


def monthly(months=12, days=(), weeks=(), weekdays=()) -> RetentionPolicy:
    return RetentionPolicy(monthly=MonthlyRule(months, days, weeks, weekdays))


def yearly(years, months, days=(), weeks=(), weekdays=()) -> RetentionPolicy:
    return RetentionPolicy(yearly=YearlyRule(years, months, days, weeks, weekdays))


EVERY_WEEKDAY = tuple(range(7))
REDUCTION_CASES = [
    (REFERENCE_POLICY, REFERENCE_POLICY, []),
    (RetentionPolicy(DailyRule(7)), REFERENCE_POLICY, []),
    (
        REFERENCE_POLICY,
        RetentionPolicy(DailyRule(30)),
        [
            "Weekly retention is removed.",
            "Monthly retention is removed.",
            "Yearly retention is removed.",
        ],
    ),
    (
        RetentionPolicy(DailyRule(60)),
        RetentionPolicy(DailyRule(30)),
        ["Daily backups would be kept 30 days instead of 60 days."],
    ),
    (
        RetentionPolicy(weekly=WeeklyRule((5, 6), 8)),
        RetentionPolicy(weekly=WeeklyRule((6, 0), 4)),
        [
            "Weekly backups would be kept 4 weeks instead of 8 weeks.",
            "Weekly retention no longer keeps Saturday backups.",
        ],
    ),
    (monthly(days=(1, 15)), monthly(days=(1,)), ["Monthly retention no longer keeps day 15."]),
    # The first Monday..Sunday of a month always include day 1: not a reduction.
    (monthly(days=(1,)), monthly(weeks=("first",), weekdays=EVERY_WEEKDAY), []),
    (
        monthly(days=(1,)),
        monthly(weeks=("first",), weekdays=(0,)),
        ["Monthly retention no longer keeps day 1."],
    ),
    (
        monthly(weeks=("last",), weekdays=(SATURDAY,)),
        monthly(weeks=("fourth",), weekdays=(SATURDAY,)),
        ["Monthly retention no longer keeps the last Saturday."],
    ),
    (
        monthly(weeks=("fourth",), weekdays=(SATURDAY,)),
        monthly(weeks=("fourth", "last"), weekdays=(5, 6)),
        [],
    ),
    (monthly(days=(28,)), monthly(days=("last",)), ["Monthly retention no longer keeps day 28."]),
    (
        yearly(10, (2,), ("last",)),
        yearly(10, (2,), (28,)),
        ["Yearly retention no longer keeps the last day of February."],
    ),
    (
        yearly(10, (3, 6, 9), weeks=("last",), weekdays=(SATURDAY,)),
        yearly(7, (3,), weeks=("last",), weekdays=(SATURDAY,)),
        [
            "Yearly backups would be kept 7 years instead of 10 years.",
            "Yearly retention no longer keeps the last Saturday of June and September.",
        ],
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), REDUCTION_CASES)
def test_is_reduction_lists_every_way_the_new_policy_keeps_less(old, new, expected):
    assert is_reduction(old, new) == expected
